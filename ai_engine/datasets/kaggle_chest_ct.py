"""Kaggle "Chest CT-Scan images" dataset: class folders of PNG/JPEG slices, optionally under
``train/``, ``valid/``, ``test/``. Folder names may carry a staging suffix
(``adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib``); the class is the folder name's prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


from ai_engine.datasets.errors import DatasetError
from ai_engine.datasets.images import ImageFolderDataset, ImageSample, image_files
from ai_engine.findings import Subtype

CLASS_NAMES: tuple[str, ...] = (
    "adenocarcinoma",
    "large.cell.carcinoma",
    "normal",
    "squamous.cell.carcinoma",
)  # the index of a name is its label, fixed whatever folders exist
SUBTYPE_OF: dict[str, Subtype | None] = {
    "adenocarcinoma": Subtype.ADENOCARCINOMA,
    "large.cell.carcinoma": Subtype.LARGE_CELL_CARCINOMA,
    "normal": None,
    "squamous.cell.carcinoma": Subtype.SQUAMOUS_CELL_CARCINOMA,
}
SPLITS: tuple[str, ...] = ("train", "valid", "test")


def class_of_folder(name: str) -> str | None:
    """The class a folder name stands for (by prefix), or None."""
    lowered = name.lower()
    for cls in CLASS_NAMES:
        if lowered == cls or lowered.startswith(cls + "_"):
            return cls
    return None


class KaggleChestCT(ImageFolderDataset):
    """Yields ``(image, label)``: uint8 ``[H, W]`` (mode "L") or ``[H, W, 3]`` ("RGB")."""

    def __init__(self, root: Path | str, split: str | None = None, mode: str = "L") -> None:
        self.root, self.mode = Path(root), mode
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        if not self.root.is_dir():
            raise DatasetError(self.root, "dataset root is not a directory")
        self.samples = tuple(_samples(self.root, split))
        if not self.samples:
            raise DatasetError(self.root, f"no images in class folders {CLASS_NAMES}")


def _samples(root: Path, split: str | None) -> Iterator[ImageSample]:
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    if not split_dirs:  # class folders directly under root
        yield from _class_folders(root, None)
        return
    for folder in split_dirs:
        if split is None or folder.name == split:
            yield from _class_folders(folder, folder.name)


def _class_folders(folder: Path, split: str | None) -> Iterator[ImageSample]:
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        cls = class_of_folder(sub.name)
        if cls is None:
            raise DatasetError(sub, f"folder name matches none of the classes {CLASS_NAMES}",
                               field="class folder")
        label = CLASS_NAMES.index(cls)
        yield from (ImageSample(p, label, split) for p in image_files(sub))
