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
    hu = np.empty((len(slices), int(first.Rows), int(first.Columns)), np.float32)
    for k, ds in enumerate(slices):
        _hu_into(ds, hu[k])
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


def _hu_into(ds: Dataset, out: np.ndarray) -> None:
    """Stored values → HU, written in place (one float32 volume, no per-slice temporaries)."""
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise SeriesLoadError(f"{ds.filename}: RescaleSlope/RescaleIntercept not finite")
    pixels = ds.pixel_array
    if pixels.shape != out.shape:
        raise SeriesLoadError(f"{ds.filename}: Rows/Columns {pixels.shape} differ from the series' {out.shape}")
    out[...] = pixels
    if slope != 1.0:
        out *= slope
    if intercept != 0.0:
        out += intercept


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
