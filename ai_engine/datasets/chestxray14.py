"""NIH ChestX-ray14: ``Data_Entry_2017.csv`` (``Image Index``, ``Finding Labels`` joined by
``|``, ``Patient ID``, ...), PNGs under ``images/`` (or Kaggle's ``images_001/images/``...), and
the official ``train_val_list.txt`` / ``test_list.txt``. Labels are a 14-long multi-hot vector;
"No Finding" is all zeros.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai_engine.datasets.csvfiles import read_rows, text_field
from ai_engine.datasets.errors import DatasetError
from ai_engine.datasets.images import load_image

LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
ENTRY_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
SPLIT_LISTS = {"train_val": "train_val_list.txt", "test": "test_list.txt"}


@dataclass(frozen=True)
class ChestXrayEntry:
    image_index: str
    findings: tuple[str, ...]  # empty for "No Finding"
    patient_id: str

    def multi_hot(self) -> np.ndarray:
        vector = np.zeros(len(LABELS), dtype=np.float32)
        vector[[LABELS.index(f) for f in self.findings]] = 1.0
        return vector


def read_entries(path: Path | str) -> tuple[ChestXrayEntry, ...]:
    """Rows of ``Data_Entry_2017.csv``; an unknown finding label is an error."""
    path = Path(path)
    return tuple(_entry(path, n, row) for n, row in read_rows(path, ENTRY_COLUMNS))


class ChestXray14:
    """Yields ``(image, labels)``: uint8 ``[H, W]`` and a float32 multi-hot vector over LABELS."""

    def __init__(self, root: Path | str, split: str | None = None, mode: str = "L") -> None:
        self.root, self.mode = Path(root), mode
        if split is not None and split not in SPLIT_LISTS:
            raise ValueError(f"split must be one of {tuple(SPLIT_LISTS)} or None, got {split!r}")
        entries = read_entries(self.root / "Data_Entry_2017.csv")
        if split is not None:
            wanted = _read_list(self.root / SPLIT_LISTS[split])
            entries = tuple(e for e in entries if e.image_index in wanted)
        self._paths = _image_paths(self.root)
        self.entries = entries

    def image_path(self, entry: ChestXrayEntry) -> Path:
        try:
            return self._paths[entry.image_index]
        except KeyError:
            raise DatasetError(self.root / "images" / entry.image_index, "image listed in "
                               "Data_Entry_2017.csv not found", field="Image Index") from None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        entry = self.entries[index]
        return load_image(self.image_path(entry), self.mode), entry.multi_hot()

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return (self[i] for i in range(len(self)))


def _entry(path: Path, line: int, row: dict[str, str]) -> ChestXrayEntry:
    raw = text_field(path, line, row, "Finding Labels")
    findings = tuple(f.strip() for f in raw.split("|"))
    unknown = [f for f in findings if f not in LABELS and f != NO_FINDING]
    if unknown:
        raise DatasetError(path, f"line {line}: unknown label(s) {unknown}", field="Finding Labels")
    findings = tuple(f for f in findings if f != NO_FINDING)
    return ChestXrayEntry(text_field(path, line, row, "Image Index"), findings,
                          text_field(path, line, row, "Patient ID"))


def _read_list(path: Path) -> frozenset[str]:
    if not path.is_file():
        raise DatasetError(path, "split list not found")
    return frozenset(line.strip() for line in path.read_text().splitlines() if line.strip())


def _image_paths(root: Path) -> dict[str, Path]:
    paths = {p.name: p for p in sorted(root.glob("images*/**/*.png"))}
    if not paths:
        raise DatasetError(root / "images", "no PNG images under images*/")
    return paths
