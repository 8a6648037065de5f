"""Primitive shapes evaluated on a block of voxels (tapered tubes, spheres) with partial volume."""

from __future__ import annotations

import numpy as np

from ai_engine.synthetic.grid import Box, Grid


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / max(float(np.linalg.norm(v)), 1e-9)


def random_unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    v = rng.normal(size=(n or 1, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v if n else v[0]


def segment_box(grid: Grid, a, b, radius_mm: float) -> Box | None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return grid.box(np.minimum(a, b) - radius_mm, np.maximum(a, b) + radius_mm)


def tube_fraction(box: Box, a, b, r0_mm: float, r1_mm: float, voxel_mm: float) -> np.ndarray:
    """Fraction of each voxel covered by a tube a→b whose radius tapers r0→r1 (anti-aliased).

    Coverage is a linear ramp one voxel wide across the surface, so tubes thinner than a voxel
    still show, fainter, as they would on a scanner.
    """
    a = np.asarray(a, np.float32)
    ab = np.asarray(b, np.float32) - a
    px, py, pz = box.x - a[0], box.y - a[1], box.z - a[2]
    t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    dx, dy, dz = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    radius = r0_mm + t * (r1_mm - r0_mm)
    return np.clip((radius - dist) / voxel_mm + 0.5, 0.0, 1.0).astype(np.float32)


def sphere_distance(box: Box, centre_mm) -> np.ndarray:
    """Euclidean distance (mm) of every voxel centre of the box to a point."""
    c = np.asarray(centre_mm, np.float32)
    return np.sqrt((box.x - c[0]) ** 2 + (box.y - c[1]) ** 2 + (box.z - c[2]) ** 2)


def blend(hu_block: np.ndarray, fraction: np.ndarray, target_hu: float, where=None) -> None:
    """In place: move each voxel towards ``target_hu`` by its covered fraction."""
    f = fraction if where is None else fraction * where
    hu_block += f * (np.float32(target_hu) - hu_block)
