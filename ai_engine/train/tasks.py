"""Segmentation and classification tasks for the training loop: loss, augmentation, validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.transforms import Compose
from torch import nn

from ai_engine.evaluate import dice, roc_auc
from ai_engine.train.augment import augment_batch, augmenter
from ai_engine.train.loop import TensorSet, predict


def roc_auc_or_nan(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when a small validation set holds only one class."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return roc_auc(labels.astype(int).tolist(), scores.tolist())


@dataclass
class SegmentationTask:
    """Two-class voxel segmentation with Dice + cross-entropy (the paper's Dice loss, stabilised)."""

    seed: int = 0
    bf16: bool = False  # evaluate under bf16 autocast
    # "batch": one Dice over the whole batch (stable with nodule-free patches, but a 4 mm nodule's
    # 30 voxels weigh nothing beside a 20 mm nodule's 4,000); "patch": each patch's own foreground
    # Dice, smoothed by 1 voxel so nodule-free patches stay defined, so every nodule's patch counts alike
    dice: str = "batch"
    monitor: str = "dice"
    _aug: Compose = field(init=False)
    _loss: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self._aug = augmenter(3, with_label=True, seed=self.seed)
        if self.dice == "batch":
            self._loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
        elif self.dice == "patch":
            self._loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=False, include_background=False,
                                    smooth_nr=1.0, smooth_dr=1.0)
        else:
            raise ValueError(f"dice must be 'batch' or 'patch', not {self.dice!r}")

    def describe(self) -> str:
        """The loss, for the model card's training record."""
        if self.dice == "batch":
            return "DiceCE (MONAI DiceCELoss, batch Dice over both classes)"
        return "DiceCE (MONAI DiceCELoss, each patch's nodule Dice, smooth 1)"

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, y.long())

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_batch(self._aug, x, y)  # type: ignore[return-value]

    def evaluate(self, model: nn.Module, data: TensorSet, device: torch.device) -> dict[str, float]:
        prob = predict(model, data.x, device, transform=lambda t: torch.softmax(t, 1)[:, 1:],
                       bf16=self.bf16)
        return {"dice": dice(prob.numpy() >= 0.5, data.y.numpy() > 0)}


@dataclass
class ClassificationTask:
    """Softmax classification; validation reports accuracy and, for two classes, ROC AUC."""

    spatial_dims: int
    n_classes: int
    seed: int = 0
    bf16: bool = False
    monitor: str = "auc"
    _aug: Compose = field(init=False)

    def __post_init__(self) -> None:
        self._aug = augmenter(self.spatial_dims, with_label=False, seed=self.seed)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, y)

    def describe(self) -> str:
        return "cross-entropy"

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_batch(self._aug, x)[0], y

    def evaluate(self, model: nn.Module, data: TensorSet, device: torch.device) -> dict[str, float]:
        prob = predict(model, data.x, device, transform=lambda t: torch.softmax(t, 1),
                       bf16=self.bf16).numpy()
        return classification_metrics(prob, data.y.numpy())


def classification_metrics(prob: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out = {"accuracy": float((prob.argmax(1) == labels).mean())}
    if prob.shape[1] == 2:
        out["auc"] = roc_auc_or_nan(labels, prob[:, 1])
    return out
