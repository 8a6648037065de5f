"""Turning HU arrays into model inputs: intensity windows, fixed-size crops, 2.5D planes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ai_engine.preprocess import window_minmax


def window01(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip HU to ``window`` and min-max scale to [0, 1] (float32)."""
    return window_minmax(hu, float(window[0]), float(window[1]))


def crop_centered(array: np.ndarray, centre_zyx: Sequence[float], size: Sequence[int],
                  fill: float = 0.0) -> np.ndarray:
    """A ``size`` crop of a 3D array centred on ``centre_zyx``; outside the array is ``fill``."""
    out = np.full(tuple(size), fill, dtype=array.dtype)
    start = [int(round(c)) - s // 2 for c, s in zip(centre_zyx, size)]
    src, dst = [], []
    for a, s, n in zip(start, size, array.shape):
        lo, hi = max(a, 0), min(a + s, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - a, hi - a))
    out[tuple(dst)] = array[tuple(src)]
    return out


def orthogonal_planes(patch: np.ndarray) -> np.ndarray:
    """2.5D input: the axial, coronal and sagittal planes through a cubic patch's centre, [3, n, n]."""
    cz, cy, cx = (s // 2 for s in patch.shape)
    return np.stack([patch[cz, :, :], patch[:, cy, :], patch[:, :, cx]]).astype(np.float32)
