"""Segmentation overlap: Dice per case and per reference nodule (connected component)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ai_engine.evaluate.errors import EvaluationError


@dataclass(frozen=True)
class NoduleDice:
    """Dice of one reference nodule against the predicted components that touch it."""

    label: int
    dice: float
    detected: bool  # some predicted voxel overlaps the nodule
    volume_voxels: int


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice = 2|A∩B| / (|A|+|B|) of two masks (non-zero = foreground); 1.0 when both are empty."""
    a, b = _binary_pair(prediction, reference)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def dice_per_nodule(prediction: np.ndarray, reference: np.ndarray) -> tuple[NoduleDice, ...]:
    """One :class:`NoduleDice` per reference nodule.

    ``reference`` may be a label map (1..n) or a binary mask (split into 26-connected
    components; a map whose maximum is 1 counts as binary). Each nodule is compared with the union of the predicted connected components
    that overlap it, so a neighbouring false positive does not lower a nodule's Dice.
    """
    pred, ref_labels = _binary_pair(prediction, reference)[0], _labels(reference)
    pred_components, _ = ndimage.label(pred, structure=np.ones((3,) * pred.ndim))
    out = []
    for label in np.unique(ref_labels[ref_labels > 0]):
        nodule = ref_labels == label
        touching = np.unique(pred_components[nodule & (pred_components > 0)])
        matched = np.isin(pred_components, touching) & (pred_components > 0)
        out.append(NoduleDice(int(label), dice(matched, nodule), bool(touching.size), int(nodule.sum())))
    return tuple(out)


def _labels(reference: np.ndarray) -> np.ndarray:
    if reference.dtype == bool or reference.max(initial=0) <= 1:
        labels, _ = ndimage.label(reference > 0, structure=np.ones((3,) * reference.ndim))
        return labels
    return reference.astype(np.int64)


def _binary_pair(prediction: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if prediction.shape != reference.shape:
        raise EvaluationError(
            f"prediction shape {prediction.shape} differs from reference shape {reference.shape}"
        )
    return np.asarray(prediction) != 0, np.asarray(reference) != 0
