"""Errors of the model layer.

    ModelError (Exception)
     ├── UnknownModelError (KeyError)      name or profile not in the registry
     ├── ModelCardError (ValueError)       card missing, unreadable or inconsistent
     └── WeightsIntegrityError (ValueError) weights file does not match the card's sha256
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of all model-layer errors."""


class UnknownModelError(ModelError, KeyError):
    """A model name or profile the registry does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ModelCardError(ModelError, ValueError):
    """A model card that is missing, unreadable or does not describe the requested model."""


class WeightsIntegrityError(ModelError, ValueError):
    """A weights file whose sha256 differs from the one recorded in its model card."""
