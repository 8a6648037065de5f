"""Resampling to isotropic voxels (the paper: 1 mm³, linear interpolation) and back, via SimpleITK.

The output grid keeps the input's origin (centre of voxel [0, 0, 0]) and direction and covers the
same physical extent (size × spacing, rounded to whole voxels), so positions in mm are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ai_engine.findings import CTVolume
from ai_engine.preprocess.errors import GeometryError

AIR_HU = -1024.0
INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}


@dataclass(frozen=True)
class VolumeGeometry:
    """Where an array's voxels are: shape [z, y, x]; spacing, origin, direction in ITK (x, y, z) order."""

    shape_zyx: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, volume: CTVolume) -> VolumeGeometry:
        return cls(tuple(int(n) for n in volume.hu.shape), tuple(float(s) for s in volume.spacing_mm),
                   tuple(float(o) for o in volume.origin_mm), tuple(float(d) for d in volume.direction))

    def isotropic(self, spacing_mm: float) -> VolumeGeometry:
        """Same origin, direction and extent, with ``spacing_mm`` voxels."""
        extent = np.array(self.shape_zyx[::-1]) * np.array(self.spacing_mm)  # x, y, z
        size_xyz = np.maximum(1, np.round(extent / spacing_mm)).astype(int)
        return VolumeGeometry(tuple(int(n) for n in size_xyz[::-1]), (float(spacing_mm),) * 3,
                              self.origin_mm, self.direction)


def _image(array: np.ndarray, geometry: VolumeGeometry) -> sitk.Image:
    if tuple(array.shape) != tuple(geometry.shape_zyx):
        raise GeometryError(f"array shape {tuple(array.shape)} does not match geometry {geometry.shape_zyx}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(geometry.spacing_mm)
    image.SetOrigin(geometry.origin_mm)
    image.SetDirection(geometry.direction)
    return image


def _resample(array: np.ndarray, src: VolumeGeometry, ref: VolumeGeometry, interpolator: str, fill: float) -> np.ndarray:
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(INTERPOLATORS)}, got {interpolator!r}")
    f = sitk.ResampleImageFilter()
    f.SetSize([int(n) for n in ref.shape_zyx[::-1]])
    f.SetOutputSpacing(ref.spacing_mm)
    f.SetOutputOrigin(ref.origin_mm)
    f.SetOutputDirection(ref.direction)
    f.SetInterpolator(INTERPOLATORS[interpolator])
    f.SetDefaultPixelValue(float(fill))
    return sitk.GetArrayFromImage(f.Execute(_image(array, src)))


def resample_isotropic(volume: CTVolume, spacing_mm: float = 1.0, order: str = "linear") -> CTVolume:
    """``volume`` resampled to ``spacing_mm`` cubic voxels (float32 HU; outside → -1024 HU)."""
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be > 0, got {spacing_mm}")
    src = VolumeGeometry.of(volume)
    ref = src.isotropic(spacing_mm)
    hu = _resample(np.asarray(volume.hu, np.float32), src, ref, order, AIR_HU)
    return CTVolume(hu=hu, spacing_mm=ref.spacing_mm, origin_mm=ref.origin_mm, direction=ref.direction)


def resample_to_reference(mask: np.ndarray, src: VolumeGeometry, ref: VolumeGeometry,
                          interpolator: str = "nearest") -> np.ndarray:
    """A label/probability array on ``src`` resampled onto ``ref`` (e.g. back to the input grid).

    Label maps keep their dtype with nearest-neighbour; use ``"linear"`` for probabilities.
    """
    dtype = mask.dtype
    work = mask.astype(np.uint8) if dtype == bool else mask
    if interpolator != "nearest" and work.dtype.kind in "iub":
        work = work.astype(np.float32)
    out = _resample(work, src, ref, interpolator, 0.0)
    return out.astype(dtype) if interpolator == "nearest" else out
