"""Errors of preprocessing.

    PreprocessError (ValueError)
     └── GeometryError      a volume/mask whose shape, spacing or direction cannot be used
"""

from __future__ import annotations


class PreprocessError(ValueError):
    """Input to preprocessing that cannot be processed."""


class GeometryError(PreprocessError):
    """Shape, spacing or direction that does not fit (e.g. mask shape ≠ volume shape)."""
