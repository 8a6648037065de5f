"""Preprocessing per the paper: isotropic resampling, HU window + min-max, lungs, location.

``resample_isotropic(volume, spacing_mm=1.0, order="linear") -> CTVolume``;
``VolumeGeometry.of(volume)``; ``resample_to_reference(mask, src, ref, interpolator="nearest")``;
``window_minmax(hu, lo=-1000, hi=400) -> float32 [0, 1]``; ``lung_mask(volume) -> bool``;
``lung_bbox(mask, margin_mm=10, spacing_mm=(x, y, z)) -> (slice_z, slice_y, slice_x)``;
``assign_location(centroid_zyx, lung_mask, volume, extent=None) -> (Side, Zone, lobe)``;
``lung_extent(lung_mask, volume) -> LungExtent``.
"""

from ai_engine.preprocess.errors import GeometryError, PreprocessError
from ai_engine.preprocess.location import LungExtent, assign_location, locate, lung_extent
from ai_engine.preprocess.lungs import lung_bbox, lung_mask
from ai_engine.preprocess.resample import VolumeGeometry, resample_isotropic, resample_to_reference
from ai_engine.preprocess.window import LUNG_WINDOW_HU, window_minmax

__all__ = [
    "LUNG_WINDOW_HU",
    "GeometryError",
    "LungExtent",
    "PreprocessError",
    "VolumeGeometry",
    "assign_location",
    "lung_bbox",
    "locate",
    "lung_extent",
    "lung_mask",
    "resample_isotropic",
    "resample_to_reference",
    "window_minmax",
]
