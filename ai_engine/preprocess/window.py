"""Intensity normalisation: a HU window, then min-max to [0, 1] (the paper's normalisation)."""

from __future__ import annotations

import numpy as np

LUNG_WINDOW_HU = (-1000.0, 400.0)


def window_minmax(hu: np.ndarray, lo: float = LUNG_WINDOW_HU[0], hi: float = LUNG_WINDOW_HU[1]) -> np.ndarray:
    """Clip HU to [lo, hi] and scale linearly to float32 [0, 1]."""
    if not hi > lo:
        raise ValueError(f"window needs hi > lo, got lo={lo}, hi={hi}")
    out = np.clip(np.asarray(hu, np.float32), lo, hi)
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return out
