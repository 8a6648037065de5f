"""The voxel grid a phantom is drawn on, in patient (LPS) millimetres.

Everything in :mod:`ai_engine.synthetic` is described in patient coordinates ``(x, y, z)`` mm
(+x patient left, +y posterior, +z superior) and drawn by evaluating shapes on the centres of the
voxels of a :class:`Grid` (identity direction, arrays ``[z, y, x]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ai_engine.findings import CTVolume


@dataclass(frozen=True)
class Box:
    """An axis-aligned block of a grid: index slices plus the mm coordinates of its voxels."""

    slices: tuple[slice, slice, slice]  # z, y, x
    z: np.ndarray  # [nz, 1, 1] mm
    y: np.ndarray  # [1, ny, 1] mm
    x: np.ndarray  # [1, 1, nx] mm


@dataclass(frozen=True)
class Grid:
    shape_zyx: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]  # (x, y, z)
    origin_mm: tuple[float, float, float]  # (x, y, z) of voxel [0, 0, 0]

    @classmethod
    def centred(cls, shape_zyx: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> Grid:
        """A grid whose centre is the patient origin (0, 0, 0)."""
        shape = tuple(int(n) for n in shape_zyx)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape_zyx must be three positive ints, got {shape_zyx!r}")
        spacing = tuple(float(s) for s in spacing_mm)
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"spacing_mm must be three positive floats (x, y, z), got {spacing_mm!r}")
        nz, ny, nx = shape
        origin = tuple(-(n - 1) * s / 2.0 for n, s in zip((nx, ny, nz), spacing))
        return cls(shape, spacing, origin)

    def axis_mm(self, axis: int) -> np.ndarray:
        """1-D mm coordinates of voxel centres along array axis 0 (z), 1 (y) or 2 (x)."""
        k = 2 - axis  # array axis -> (x, y, z) index
        n = self.shape_zyx[axis]
        return (self.origin_mm[k] + self.spacing_mm[k] * np.arange(n)).astype(np.float32)

    @cached_property
    def zyx_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable coordinate arrays z [nz,1,1], y [1,ny,1], x [1,1,nx] in mm."""
        z, y, x = (self.axis_mm(a) for a in range(3))
        return z[:, None, None], y[None, :, None], x[None, None, :]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Field of view (x, y, z) in mm."""
        nz, ny, nx = self.shape_zyx
        return (nx * self.spacing_mm[0], ny * self.spacing_mm[1], nz * self.spacing_mm[2])

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    def mm_to_index(self, xyz_mm) -> np.ndarray:
        """Patient (x, y, z) mm → continuous voxel index (z, y, x)."""
        ijk = (np.asarray(xyz_mm, dtype=float) - np.array(self.origin_mm)) / np.array(self.spacing_mm)
        return ijk[..., ::-1]

    def index_to_mm(self, zyx) -> np.ndarray:
        ijk = np.asarray(zyx, dtype=float)[..., ::-1]
        return np.array(self.origin_mm) + ijk * np.array(self.spacing_mm)

    def box(self, lo_mm, hi_mm) -> Box | None:
        """Voxels whose centres lie in the mm box [lo, hi] (x, y, z); None if it misses the grid."""
        lo = np.ceil(self.mm_to_index(lo_mm) - 1e-6).astype(int)
        hi = np.floor(self.mm_to_index(hi_mm) + 1e-6).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.shape_zyx)
        if np.any(hi <= lo):
            return None
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        z, y, x = (self.axis_mm(a)[sl[a]] for a in range(3))
        return Box(sl, z[:, None, None], y[None, :, None], x[None, None, :])

    def lookup(self, labels: np.ndarray):
        """A function: points (x, y, z) mm [..., 3] → the label of the nearest voxel (0 off-grid)."""
        shape = np.array(self.shape_zyx)

        def at(points_mm) -> np.ndarray:
            p = np.asarray(points_mm, dtype=float)
            idx = np.rint(self.mm_to_index(p.reshape(-1, 3))).astype(np.int64)
            ok = np.all((idx >= 0) & (idx < shape), axis=1)
            out = np.zeros(len(idx), labels.dtype)
            out[ok] = labels[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
            return out.reshape(p.shape[:-1])

        return at

    def volume(self, hu: np.ndarray) -> CTVolume:
        return CTVolume(hu=hu, spacing_mm=self.spacing_mm, origin_mm=self.origin_mm)
