"""CSV reading with header checks and field-level errors (shared by the loaders)."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from ai_engine.datasets.errors import DatasetError


def read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each data row; checks the file exists and has ``required``."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(path, f"header lacks column(s) {missing}", field=missing[0])
        for row in reader:
            yield reader.line_num, row


def float_field(path: Path, line: int, row: dict[str, str], name: str) -> float:
    value = row.get(name)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DatasetError(path, f"line {line}: {value!r} is not a number", field=name) from None


def text_field(path: Path, line: int, row: dict[str, str], name: str) -> str:
    value = (row.get(name) or "").strip()
    if not value:
        raise DatasetError(path, f"line {line}: empty value", field=name)
    return value
