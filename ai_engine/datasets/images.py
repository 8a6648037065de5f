"""Reading 2D images (PNG/JPEG) with errors that name the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ai_engine.datasets.errors import DatasetError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})


def load_image(path: Path, mode: str = "L") -> np.ndarray:
    """Pixels as uint8 ``[H, W]`` (mode "L") or ``[H, W, 3]`` (mode "RGB")."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(path, f"not a readable image ({exc})", field="image") from exc


def image_files(folder: Path) -> list[Path]:
    """PNG/JPEG files directly in ``folder``, sorted by name (a stable order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class ImageSample:
    path: Path
    label: int
    split: str | None


class ImageFolderDataset:
    """A sequence of (image array, class index) over ``self.samples``, read lazily in ``self.mode``."""

    samples: tuple[ImageSample, ...]
    mode: str

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        sample = self.samples[index]
        return load_image(sample.path, self.mode), sample.label

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        return (self[i] for i in range(len(self)))
