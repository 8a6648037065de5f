"""LC25000 lung histopathology: JPEG folders ``lung_aca``, ``lung_scc``, ``lung_n`` (found
anywhere under the root, e.g. ``lung_colon_image_set/lung_image_sets/lung_aca``)."""

from __future__ import annotations

from pathlib import Path


from ai_engine.datasets.errors import DatasetError
from ai_engine.datasets.images import ImageFolderDataset, ImageSample, image_files
from ai_engine.findings import Subtype

CLASS_NAMES: tuple[str, ...] = ("lung_aca", "lung_n", "lung_scc")
SUBTYPE_OF: dict[str, Subtype | None] = {
    "lung_aca": Subtype.ADENOCARCINOMA,
    "lung_n": None,  # benign lung tissue
    "lung_scc": Subtype.SQUAMOUS_CELL_CARCINOMA,
}


class LC25000(ImageFolderDataset):
    """Yields ``(image, label)``: uint8 ``[H, W, 3]`` RGB and the index in CLASS_NAMES."""

    def __init__(self, root: Path | str, mode: str = "RGB") -> None:
        self.root, self.mode = Path(root), mode
        if not self.root.is_dir():
            raise DatasetError(self.root, "dataset root is not a directory")
        folders = {name: _find_folder(self.root, name) for name in CLASS_NAMES}
        missing = [name for name, folder in folders.items() if folder is None]
        if missing:
            raise DatasetError(self.root, f"class folder(s) {missing} not found", field="class folder")
        self.samples = tuple(
            ImageSample(p, CLASS_NAMES.index(name), None)
            for name, folder in folders.items()
            for p in image_files(folder)  # type: ignore[arg-type]
        )


def _find_folder(root: Path, name: str) -> Path | None:
    if (root / name).is_dir():
        return root / name
    return next(iter(sorted(p for p in root.rglob(name) if p.is_dir())), None)
