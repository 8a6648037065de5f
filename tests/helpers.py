"""Test-only helpers: small synthetic CT studies written as real DICOM files, and the public datasets'
own formats (LUNA16 MetaImage scans, Kaggle chest CT class folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ai_engine.findings import CTVolume
from dicom_node.modality import FictitiousPatient, SeriesUIDs, ct_slices, write_ct_series


def simple_ct_volume(shape=(40, 64, 64), spacing_mm=(0.8, 0.8, 1.25), seed=0) -> CTVolume:
    """Air, a water-like body ellipse, two lungs at -850 HU and one 10 mm solid sphere."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((y - ny / 2) / (ny * 0.45)) ** 2 + ((x - nx / 2) / (nx * 0.48)) ** 2 <= 1
    hu[body] = 40.0
    for cx in (nx * 0.3, nx * 0.7):
        lung = ((y - ny / 2) / (ny * 0.3)) ** 2 + ((x - cx) / (nx * 0.16)) ** 2 <= 1
        hu[lung] = -850.0
    r_vox = 5.0 / np.array(spacing_mm)  # 10 mm sphere
    c = (nz / 2, ny / 2, nx * 0.3)
    sphere = ((z - c[0]) / r_vox[2]) ** 2 + ((y - c[1]) / r_vox[1]) ** 2 + ((x - c[2]) / r_vox[0]) ** 2 <= 1
    hu[sphere] = 30.0
    hu += rng.normal(0, 10, shape).astype(np.float32)
    origin = (-nx * spacing_mm[0] / 2, -ny * spacing_mm[1] / 2, -100.0)
    return CTVolume(hu=hu, spacing_mm=spacing_mm, origin_mm=origin)


def write_study(out_dir: Path, seed: int = 1, shape=(40, 64, 64), patient: FictitiousPatient | None = None) -> list[Path]:
    """A complete CT study (one axial series) as DICOM files; returns the file paths."""
    volume = simple_ct_volume(shape=shape, seed=seed)
    patient = patient or FictitiousPatient.from_seed(seed)
    return write_ct_series(ct_slices(volume, patient, SeriesUIDs.from_seed(seed)), out_dir)


def write_mhd(volume: CTVolume, path: Path) -> None:
    """``volume`` as a LUNA16 scan: MetaImage header ``path`` (.mhd) beside its int16 .raw."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.hu.astype(np.int16))
    image.SetSpacing(volume.spacing_mm)
    image.SetOrigin(volume.origin_mm)
    image.SetDirection(volume.direction)
    sitk.WriteImage(image, str(path))


def write_kaggle_slices(root: Path, grey_by_folder: dict[str, int], per_folder: int = 6) -> Path:
    """Kaggle chest CT class folders under ``root``: ``per_folder`` uniform PNGs of the folder's grey
    level each, non-square and of varying size, as the real slices are."""
    from PIL import Image

    for folder, grey in grey_by_folder.items():
        (root / folder).mkdir(parents=True)
        for i in range(per_folder):
            Image.new("L", (90 + i, 70), grey).save(root / folder / f"{i:03d}.png")
    return root
