"""Candidate outlines from the U-Net's 1 mm grid back onto the input CT grid.

Nearest-neighbour resampling of the 1 mm label map puts every boundary on whole 1 mm blocks; on a
5 mm nodule that half-voxel error is a large share of its volume. Instead each input voxel takes
the U-Net probability linearly interpolated at its centre, and belongs to a candidate where that
reaches the probability threshold and the candidate is the nearest one on the 1 mm grid.
Requires the two grids to share origin and direction (``preprocess.resample_isotropic`` keeps them).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ai_engine.findings import CTVolume

GROW_VOXELS = 2  # how far (1 mm voxels) an outline may reach past its voxels on the 1 mm grid


def labels_on_input_grid(iso_labels: np.ndarray, prob: np.ndarray, threshold: float, iso: CTVolume,
                         volume: CTVolume) -> np.ndarray:
    """Label map on ``volume``'s grid (same label numbers as ``iso_labels``, uint16)."""
    out = np.zeros(volume.hu.shape, np.uint16)
    scale = np.array(volume.spacing_mm[::-1], float) / np.array(iso.spacing_mm[::-1], float)  # input → iso index
    for label, box in enumerate(ndimage.find_objects(iso_labels), start=1):
        if box is None:
            continue
        lo = np.array([max(s.start - GROW_VOXELS, 0) for s in box])
        hi = np.array([min(s.stop + GROW_VOXELS, n) for s, n in zip(box, iso_labels.shape)])
        owner = _nearest_label(iso_labels[tuple(slice(a, b) for a, b in zip(lo, hi))])
        first = np.ceil(lo / scale).astype(int)
        last = np.minimum(np.floor((hi - 1) / scale).astype(int), np.array(out.shape) - 1)
        if np.any(last < first):
            continue
        axes = [np.arange(a, b + 1) * s for a, b, s in zip(first, last, scale)]  # iso coordinates
        coords = np.stack(np.meshgrid(*axes, indexing="ij"))
        p = ndimage.map_coordinates(prob, coords.reshape(3, -1), order=1, mode="nearest").reshape(coords.shape[1:])
        near = np.rint(coords).astype(int) - lo[:, None, None, None]
        near = np.clip(near, 0, (hi - lo - 1)[:, None, None, None])
        mine = (owner[near[0], near[1], near[2]] == label) & (p >= threshold)
        region = out[tuple(slice(a, b + 1) for a, b in zip(first, last))]
        region[mine & (region == 0)] = label
    return out


def _nearest_label(labels: np.ndarray) -> np.ndarray:
    """Each voxel within ``GROW_VOXELS`` of a label takes the nearest label (0 elsewhere)."""
    if labels.all():
        return labels
    dist, idx = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    grown = labels[tuple(idx)]
    grown[dist > GROW_VOXELS] = 0
    return grown
