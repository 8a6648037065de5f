"""Where a nodule is: side, zone (thirds of the lung height) and an estimated lobe.

Side: the nodule's patient x against the lung midline (midpoint of the lungs' x extent); in LPS
+x is the patient's LEFT. Zone: thirds of the lungs' craniocaudal (patient z) extent, +z being
superior. Lobe (an ESTIMATE from position only; fissures are not segmented): right lung —
upper zone → upper lobe, lower zone → lower lobe, middle zone → middle lobe if in the anterior half
of the lung, else lower lobe; left lung — upper zone, and the anterior half of the middle zone
(lingula), → upper lobe, otherwise lower lobe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai_engine.findings import CTVolume, Side, Zone


@dataclass(frozen=True)
class LungExtent:
    """The lungs' bounding box in patient mm: (min, max) per patient axis x, y, z."""

    x_mm: tuple[float, float]
    y_mm: tuple[float, float]
    z_mm: tuple[float, float]


def lung_extent(lung_mask: np.ndarray, volume: CTVolume) -> LungExtent:
    """Patient-mm bounding box of the mask (the 8 corners of its index box, so flips are fine)."""
    if not lung_mask.any():
        raise ValueError("lung mask is empty: cannot locate nodules relative to the lungs")
    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero(lung_mask.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(present[0])
        hi.append(present[-1])
    corners = np.array([volume.index_to_mm((z, y, x)) for z in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for x in (lo[2], hi[2])])
    return LungExtent(*[(float(corners[:, k].min()), float(corners[:, k].max())) for k in range(3)])


def _zone(z_mm: float, extent: LungExtent) -> Zone:
    lo, hi = extent.z_mm
    rel = (z_mm - lo) / max(hi - lo, 1e-6)
    return Zone.LOWER if rel < 1 / 3 else Zone.MIDDLE if rel < 2 / 3 else Zone.UPPER


def _lobe(side: Side, zone: Zone, anterior: bool) -> str:
    if side == Side.RIGHT:
        lobe = {Zone.UPPER: "upper", Zone.LOWER: "lower"}.get(zone, "middle" if anterior else "lower")
    else:
        lobe = "upper" if zone == Zone.UPPER or (zone == Zone.MIDDLE and anterior) else "lower"
    return f"{side.value} {lobe} lobe"


def assign_location(centroid_zyx, lung_mask: np.ndarray, volume: CTVolume,
                    extent: LungExtent | None = None) -> tuple[Side, Zone, str]:
    """(side, zone, lobe estimate) of a voxel position; pass ``extent`` to reuse it across nodules."""
    return locate(centroid_zyx, volume, extent or lung_extent(lung_mask, volume))


def locate(centroid_zyx, volume: CTVolume, extent: LungExtent) -> tuple[Side, Zone, str]:
    """(side, zone, lobe estimate) of a voxel position relative to the lungs' extent."""
    x, y, z = volume.index_to_mm(tuple(float(v) for v in centroid_zyx))
    side = Side.LEFT if x > sum(extent.x_mm) / 2 else Side.RIGHT
    zone = _zone(z, extent)
    anterior = y < sum(extent.y_mm) / 2  # -y is anterior in LPS
    return side, zone, _lobe(side, zone, anterior)
