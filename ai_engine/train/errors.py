"""Errors of the training layer.

    TrainError (Exception)
     └── DataSourceError (ValueError)   a data argument that cannot be parsed or loaded
"""

from __future__ import annotations


class TrainError(Exception):
    """Base of all training errors."""


class DataSourceError(TrainError, ValueError):
    """A ``data`` argument ("synthetic", "luna16:PATH", "kaggle-ct:PATH") that cannot be used."""
