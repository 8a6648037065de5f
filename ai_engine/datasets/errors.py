"""Errors raised by the dataset loaders.

    DatasetError (ValueError)   - a file is missing, unreadable or malformed; names file and field
"""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset file is missing or malformed. ``path`` and ``field`` say where."""

    def __init__(self, path: Path | str, message: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        where = f"{self.path}" + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")
