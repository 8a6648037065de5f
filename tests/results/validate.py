"""Round-trip and validate a result object: write to bytes, read back, run dicom3tools' dciodvfy."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

DCIODVFY = "/usr/bin/dciodvfy"


@dataclass(frozen=True)
class Validation:
    errors: list[str]
    warnings: list[str]


def round_trip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def dciodvfy(path: Path) -> Validation:
    """dciodvfy reports on stderr; lines starting 'Error' are IOD violations."""
    run = subprocess.run([DCIODVFY, "-new", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stderr + run.stdout).splitlines()
    return Validation(
        errors=[line for line in lines if line.startswith("Error")],
        warnings=[line for line in lines if line.startswith("Warning")],
    )
