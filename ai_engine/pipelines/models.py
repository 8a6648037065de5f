"""The trained models the CT pipeline needs, loaded (and verified) from a weights directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ai_engine.findings import ModelInfo
from ai_engine.models.card import ModelCard, load_model
from ai_engine.models.errors import ModelCardError
from ai_engine.models.registry import entry

SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SEGMENTATION_MODEL = "unet3d"
MALIGNANCY_MODELS = ("densenet121-3d", "convnext-tiny-3d")
SUBTYPE_MODEL = "efficientnet-b3"
# A card trained on these data saw another input than the pipeline gives it, so its outputs there
# would mean nothing: (model, card's data source) → what it saw.
FOREIGN_INPUTS = {(SUBTYPE_MODEL, "kaggle-ct"): "whole 2D CT slices (the Kaggle chest CT set), not the "
                                                "nodule-centred orthogonal planes the CT pipeline feeds it"}


@dataclass(frozen=True, eq=False)
class LoadedModel:
    module: nn.Module
    card: ModelCard

    @property
    def channels_last(self) -> bool:
        return entry(self.card.name).channels_last


@dataclass(frozen=True, eq=False)
class CTModels:
    """U-Net segmentation, the malignancy ensemble and the subtype classifier."""

    segmentation: LoadedModel
    malignancy: tuple[LoadedModel, ...]
    subtype: LoadedModel

    @classmethod
    def load(cls, weights_dir: Path | str = SHIPPED_WEIGHTS_DIR, profile: str = "demo") -> "CTModels":
        """Load every model from ``weights_dir``; each weights file is checked against its card, and a
        model trained on another input than the pipeline's (``FOREIGN_INPUTS``) is refused."""
        def one(name: str) -> LoadedModel:
            loaded = LoadedModel(*load_model(name, Path(weights_dir), profile))
            seen = FOREIGN_INPUTS.get((name, loaded.card.data_source))
            if seen:
                raise ModelCardError(f"{weights_dir}: the {name!r} card says it was trained on {loaded.card.data_source} "
                                     f"data, {seen}; the CT pipeline refuses it (its card holds its own test metrics)")
            return loaded

        return cls(one(SEGMENTATION_MODEL), tuple(one(n) for n in MALIGNANCY_MODELS), one(SUBTYPE_MODEL))

    @property
    def all(self) -> tuple[LoadedModel, ...]:
        return (self.segmentation, *self.malignancy, self.subtype)

    def infos(self) -> tuple[ModelInfo, ...]:
        return tuple(m.card.model_info() for m in self.all)
