"""The trained models the CT pipeline needs, loaded (and verified) from a weights directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ai_engine.findings import ModelInfo
from ai_engine.models.card import ModelCard, load_model
from ai_engine.models.registry import entry

SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SEGMENTATION_MODEL = "unet3d"
MALIGNANCY_MODELS = ("densenet121-3d", "convnext-tiny-3d")
SUBTYPE_MODEL = "efficientnet-b3"


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
        """Load every model from ``weights_dir``; each weights file is checked against its card."""
        def one(name: str) -> LoadedModel:
            return LoadedModel(*load_model(name, Path(weights_dir), profile))

        return cls(one(SEGMENTATION_MODEL), tuple(one(n) for n in MALIGNANCY_MODELS), one(SUBTYPE_MODEL))

    @property
    def all(self) -> tuple[LoadedModel, ...]:
        return (self.segmentation, *self.malignancy, self.subtype)

    def infos(self) -> tuple[ModelInfo, ...]:
        return tuple(m.card.model_info() for m in self.all)
