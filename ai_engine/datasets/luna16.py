"""LUNA16 (LIDC-IDRI subset): MetaImage volumes in ``subset0..9``, ``annotations.csv``,
``candidates.csv`` (or ``candidates_V2.csv``), all coordinates in world millimetres.

World <-> voxel uses the volume's origin, spacing and direction (ITK's physical space, which
is what LUNA16's coordX/Y/Z are given in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ai_engine.datasets.csvfiles import float_field, read_rows, text_field
from ai_engine.datasets.errors import DatasetError
from ai_engine.evaluate.detection import Annotation
from ai_engine.findings import CTVolume

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")
MHD_REQUIRED_KEYS = ("ObjectType", "NDims", "DimSize", "ElementType", "ElementDataFile")
_SUBSET = re.compile(r"^subset(\d+)$")


# an annotations.csv row is exactly what the LUNA16 evaluation matches against
LunaAnnotation = Annotation


@dataclass(frozen=True)
class LunaCandidate:
    """candidates.csv row; ``is_nodule`` is its ``class`` column."""

    seriesuid: str
    x_mm: float
    y_mm: float
    z_mm: float
    is_nodule: bool


class Luna16Case(NamedTuple):
    seriesuid: str
    volume: CTVolume
    annotations: tuple[LunaAnnotation, ...]


def read_annotations(path: Path | str) -> tuple[LunaAnnotation, ...]:
    """All rows of a LUNA16 ``annotations.csv`` (or ``annotations_excluded.csv``)."""
    path = Path(path)
    return tuple(
        LunaAnnotation(text_field(path, n, r, "seriesuid"), *_xyz(path, n, r),
                       float_field(path, n, r, "diameter_mm"))
        for n, r in read_rows(path, ANNOTATION_COLUMNS)
    )


def read_candidates(path: Path | str) -> tuple[LunaCandidate, ...]:
    """All rows of a LUNA16 ``candidates.csv`` / ``candidates_V2.csv``."""
    path = Path(path)
    return tuple(
        LunaCandidate(text_field(path, n, r, "seriesuid"), *_xyz(path, n, r), _class(path, n, r))
        for n, r in read_rows(path, CANDIDATE_COLUMNS)
    )


def read_mhd(path: Path | str) -> CTVolume:
    """A MetaImage (.mhd + .raw) CT volume in HU, with its geometry."""
    path = Path(path)
    _check_mhd_header(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DatasetError(path, f"SimpleITK cannot read it: {str(exc).strip()[-200:]}") from exc
    return CTVolume(
        hu=sitk.GetArrayFromImage(image),
        spacing_mm=tuple(float(v) for v in image.GetSpacing()),
        origin_mm=tuple(float(v) for v in image.GetOrigin()),
        direction=tuple(float(v) for v in image.GetDirection()),
    )


def world_to_voxel(volume: CTVolume, xyz_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    """World ``(x, y, z)`` mm -> continuous voxel index ``(z, y, x)`` (inverse of index_to_mm)."""
    d = np.array(volume.direction, dtype=float).reshape(3, 3)
    offset = np.asarray(xyz_mm, dtype=float) - np.asarray(volume.origin_mm, dtype=float)
    ijk = np.linalg.solve(d, offset) / np.asarray(volume.spacing_mm, dtype=float)
    return (float(ijk[2]), float(ijk[1]), float(ijk[0]))


def voxel_to_world(volume: CTVolume, zyx: tuple[float, float, float]) -> tuple[float, float, float]:
    """Continuous voxel index ``(z, y, x)`` -> world ``(x, y, z)`` mm."""
    return volume.index_to_mm(zyx)


def sphere_mask(volume: CTVolume, annotations: Iterable[LunaAnnotation]) -> np.ndarray:
    """uint16 label map ``[z, y, x]``: label i+1 marks voxels within diameter/2 of annotation i.

    LUNA16 gives each nodule a centre and a diameter only; a sphere is the usual reference mask.
    Assumes an orthonormal direction matrix (true of CT), so distances can be taken in index space.
    """
    mask = np.zeros(volume.hu.shape, dtype=np.uint16)
    spacing_zyx = np.asarray(volume.spacing_mm, dtype=float)[::-1]
    for label, a in enumerate(annotations, start=1):
        # rounded: float noise must not decide voxels lying exactly on the sphere's surface
        centre = np.round(world_to_voxel(volume, (a.x_mm, a.y_mm, a.z_mm)), 6)
        half = a.diameter_mm / 2.0 / spacing_zyx
        lo = np.maximum(np.floor(centre - half).astype(int), 0)
        hi = np.minimum(np.ceil(centre + half).astype(int) + 1, volume.hu.shape)
        if np.any(hi <= lo):
            continue  # the sphere lies outside the volume
        grid = np.ogrid[tuple(slice(l, h) for l, h in zip(lo, hi))]
        dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing_zyx))
        box = mask[tuple(slice(l, h) for l, h in zip(lo, hi))]
        box[(dist2 < (a.diameter_mm / 2.0) ** 2) & (box == 0)] = label
    return mask


class Luna16Dataset:
    """A LUNA16 tree: ``root/subsetN/<seriesuid>.mhd`` and ``root/annotations.csv``.

    Iterating yields :class:`Luna16Case` ``(seriesuid, volume, annotations)`` in seriesuid
    order, reading one volume at a time.
    """

    def __init__(self, root: Path | str, subsets: Iterable[int] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, "LUNA16 root is not a directory")
        self._mhd = _find_volumes(self.root, None if subsets is None else set(subsets))
        annotations = read_annotations(self.root / "annotations.csv")
        self._annotations: dict[str, list[LunaAnnotation]] = {}
        for a in annotations:
            self._annotations.setdefault(a.seriesuid, []).append(a)

    @property
    def seriesuids(self) -> tuple[str, ...]:
        return tuple(sorted(self._mhd))

    def subset_of(self, seriesuid: str) -> int:
        """LUNA16's own fold: N of the ``subsetN`` folder holding the scan."""
        return self._mhd[seriesuid][0]

    def annotations_for(self, seriesuid: str) -> tuple[LunaAnnotation, ...]:
        return tuple(self._annotations.get(seriesuid, ()))

    def load(self, seriesuid: str) -> Luna16Case:
        if seriesuid not in self._mhd:
            raise KeyError(f"seriesuid {seriesuid} is not in {self.root}")
        return Luna16Case(seriesuid, read_mhd(self._mhd[seriesuid][1]), self.annotations_for(seriesuid))

    def candidates(self) -> tuple[LunaCandidate, ...]:
        """``candidates_V2.csv`` if present (root or ``candidates_V2/``), else ``candidates.csv``."""
        for rel in ("candidates_V2.csv", "candidates_V2/candidates_V2.csv", "candidates.csv"):
            if (self.root / rel).is_file():
                return read_candidates(self.root / rel)
        raise DatasetError(self.root / "candidates.csv", "file not found")

    def __len__(self) -> int:
        return len(self._mhd)

    def __iter__(self) -> Iterator[Luna16Case]:
        return (self.load(uid) for uid in self.seriesuids)


def _find_volumes(root: Path, wanted: set[int] | None) -> dict[str, tuple[int, Path]]:
    found: dict[str, tuple[int, Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _SUBSET.match(p.name)):
        number = int(_SUBSET.match(folder.name).group(1))  # type: ignore[union-attr]
        if wanted is None or number in wanted:
            # rglob: unzipping subsetN.zip can leave subsetN/subsetN/*.mhd
            found.update({mhd.stem: (number, mhd) for mhd in sorted(folder.rglob("*.mhd"))})
    if not found:
        raise DatasetError(root, "no .mhd volumes in subset0..subset9 folders")
    return found


def _check_mhd_header(path: Path) -> None:
    if not path.is_file():
        raise DatasetError(path, "file not found")
    header = _mhd_header(path)
    for key in MHD_REQUIRED_KEYS:
        if key not in header:
            raise DatasetError(path, "missing MetaImage header key", field=key)
    if header["NDims"] != "3":
        raise DatasetError(path, f"expected a 3-D volume, got NDims = {header['NDims']}", field="NDims")
    data_file = header["ElementDataFile"]
    if data_file != "LOCAL" and not (path.parent / data_file).is_file():
        raise DatasetError(path, f"data file {data_file!r} not found", field="ElementDataFile")


def _mhd_header(path: Path) -> dict[str, str]:
    header: dict[str, str] = {}
    with path.open("rb") as f:
        for raw in f:
            key, sep, value = raw.decode("latin-1").partition("=")
            if not sep:
                raise DatasetError(path, f"header line {raw[:60]!r} is not 'Key = Value'")
            header[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":  # the header ends here; LOCAL data follows
                break
    return header


def _xyz(path: Path, line: int, row: dict[str, str]) -> tuple[float, float, float]:
    return tuple(float_field(path, line, row, c) for c in ("coordX", "coordY", "coordZ"))  # type: ignore[return-value]


def _class(path: Path, line: int, row: dict[str, str]) -> bool:
    value = (row.get("class") or "").strip()
    if value not in ("0", "1"):
        raise DatasetError(path, f"line {line}: class must be 0 or 1, got {value!r}", field="class")
    return value == "1"
