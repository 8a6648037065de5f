"""Load a de-identified CT series from disk into the AI engine's input (``CTVolume``).

The AI engine only ever sees arrays and geometry; this is where DICOM stops.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ai_engine.findings import CTVolume


class SeriesLoadError(ValueError):
    """The series cannot be turned into a volume (names the file and attribute)."""


def read_series(paths: list[Path]) -> list[Dataset]:
    """Read and sort slices along the slice normal (head-most last, as ITK's z grows)."""
    datasets = [pydicom.dcmread(p) for p in paths]
    if not datasets:
        raise SeriesLoadError("empty series")
    normal = _normal(datasets[0])
    return sorted(datasets, key=lambda ds: float(np.dot(normal, _position(ds))))


def to_volume(slices: list[Dataset]) -> CTVolume:
    """Sorted single-frame CT slices → HU volume [z, y, x] with ITK-order geometry."""
    first = slices[0]
    row_dir, col_dir = _orientation(first)
    normal = np.cross(row_dir, col_dir)
    hu = np.stack([_hu(ds) for ds in slices]).astype(np.float32)
    dy, dx = (float(v) for v in first.PixelSpacing)
    if len(slices) > 1:
        positions = np.array([np.dot(normal, _position(ds)) for ds in slices])
        dz = float(np.median(np.diff(positions)))
    else:
        dz = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    direction = np.column_stack([row_dir, col_dir, normal]).reshape(-1)
    return CTVolume(
        hu=hu,
        spacing_mm=(dx, dy, abs(dz)),
        origin_mm=tuple(float(v) for v in _position(first)),
        direction=tuple(float(v) for v in direction),
    )


def load_ct(paths: list[Path]) -> tuple[list[Dataset], CTVolume]:
    slices = read_series(paths)
    return slices, to_volume(slices)


def _hu(ds: Dataset) -> np.ndarray:
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise SeriesLoadError(f"{ds.filename}: RescaleSlope/RescaleIntercept not finite")
    return ds.pixel_array.astype(np.float32) * slope + intercept


def _orientation(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    try:
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    except (AttributeError, ValueError) as exc:
        raise SeriesLoadError(f"{ds.filename}: ImageOrientationPatient missing or invalid") from exc
    return iop[:3], iop[3:]


def _normal(ds: Dataset) -> np.ndarray:
    row_dir, col_dir = _orientation(ds)
    return np.cross(row_dir, col_dir)


def _position(ds: Dataset) -> np.ndarray:
    try:
        return np.array([float(v) for v in ds.ImagePositionPatient])
    except (AttributeError, ValueError) as exc:
        raise SeriesLoadError(f"{ds.filename}: ImagePositionPatient missing or invalid") from exc
