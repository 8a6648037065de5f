"""Architectures, the model registry, input specs and model cards (see registry.py, card.py)."""

from ai_engine.models.card import ModelCard, load_model, read_card, save_checkpoint
from ai_engine.models.errors import ModelCardError, ModelError, UnknownModelError, WeightsIntegrityError
from ai_engine.models.registry import PROFILES, REGISTRY, build, entry
from ai_engine.models.spec import InputSpec

__all__ = [
    "PROFILES", "REGISTRY", "InputSpec", "ModelCard", "ModelCardError", "ModelError",
    "UnknownModelError", "WeightsIntegrityError", "build", "entry", "load_model", "read_card",
    "save_checkpoint",
]
