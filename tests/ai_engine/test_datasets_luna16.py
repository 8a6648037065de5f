"""LUNA16 loader on a tiny fixture written in the real formats (.mhd/.raw via SimpleITK, CSVs)."""

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from ai_engine.datasets import (
    DatasetError,
    Luna16Dataset,
    read_annotations,
    read_candidates,
    read_mhd,
    sphere_mask,
    voxel_to_world,
    world_to_voxel,
)
from ai_engine.evaluate import Candidate, match_candidates

UID_A = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"
UID_B = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100332161840553388986847034053"
SPHERE_IJK = (20, 16, 10)  # x, y, z voxel index of the sphere centre
MHD_KEYS = ["ObjectType", "NDims", "BinaryData", "BinaryDataByteOrderMSB", "CompressedData",
            "TransformMatrix", "Offset", "CenterOfRotation", "AnatomicalOrientation",
            "ElementSpacing", "DimSize", "ElementType", "ElementDataFile"]


def _write_volume(path, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    z, y, x = np.mgrid[0:20, 0:32, 0:40]
    hu = np.full((20, 32, 40), -1000, np.int16)
    i, j, k = SPHERE_IJK
    hu[((x - i) ** 2 + (y - j) ** 2 + (z - k) ** 2) <= 9] = 100
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-100.5, -120.25, -300.0))
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return image.TransformContinuousIndexToPhysicalPoint(SPHERE_IJK)  # world mm, by ITK


@pytest.fixture
def luna_root(tmp_path):
    (tmp_path / "subset0").mkdir()
    (tmp_path / "subset3" / "subset3").mkdir(parents=True)  # as unzipped from subset3.zip
    centre_a = _write_volume(tmp_path / "subset0" / f"{UID_A}.mhd")
    centre_b = _write_volume(tmp_path / "subset3" / "subset3" / f"{UID_B}.mhd", (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    rows = [f"{UID_A},{centre_a[0]},{centre_a[1]},{centre_a[2]},4.2",
            f"{UID_B},{centre_b[0]},{centre_b[1]},{centre_b[2]},4.2"]
    (tmp_path / "annotations.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n" + "\n".join(rows) + "\n")
    (tmp_path / "candidates.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,class\n"
        f"{UID_A},{centre_a[0]},{centre_a[1]},{centre_a[2]},1\n{UID_A},-56.08,-67.85,-311.92,0\n")
    return tmp_path


def test_mhd_header_has_the_real_metaimage_keys(luna_root):
    text = (luna_root / "subset0" / f"{UID_A}.mhd").read_text()
    keys = [line.split("=")[0].strip() for line in text.splitlines()]
    assert keys == MHD_KEYS
    assert (luna_root / "subset0" / f"{UID_A}.raw").stat().st_size == 20 * 32 * 40 * 2


def test_dataset_yields_cases_with_annotations(luna_root):
    ds = Luna16Dataset(luna_root)
    assert ds.seriesuids == (UID_A, UID_B) and len(ds) == 2
    assert (ds.subset_of(UID_A), ds.subset_of(UID_B)) == (0, 3)
    cases = list(ds)
    uid, volume, annotations = cases[0]
    assert uid == UID_A and volume.hu.shape == (20, 32, 40) and volume.hu.dtype == np.int16
    assert volume.spacing_mm == pytest.approx((0.7, 0.8, 2.5))
    assert volume.origin_mm == pytest.approx((-100.5, -120.25, -300.0))
    assert len(annotations) == 1 and annotations[0].diameter_mm == 4.2
    assert len(Luna16Dataset(luna_root, subsets=[3])) == 1


@pytest.mark.parametrize("uid", [UID_A, UID_B])
def test_annotated_sphere_is_at_the_converted_voxel(luna_root, uid):
    _, volume, (annotation,) = Luna16Dataset(luna_root).load(uid)
    zyx = world_to_voxel(volume, (annotation.x_mm, annotation.y_mm, annotation.z_mm))
    assert zyx == pytest.approx((SPHERE_IJK[2], SPHERE_IJK[1], SPHERE_IJK[0]), abs=1e-6)
    centre_of_mass = np.argwhere(volume.hu == 100).mean(axis=0)
    assert tuple(centre_of_mass) == pytest.approx(zyx, abs=1e-6)


def test_world_voxel_round_trip(luna_root):
    volume = read_mhd(luna_root / "subset3" / "subset3" / f"{UID_B}.mhd")  # flipped x/y direction
    assert volume.direction == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    for zyx in [(0.0, 0.0, 0.0), (3.5, 7.25, 11.0), (19.0, 31.0, 39.0)]:
        assert world_to_voxel(volume, voxel_to_world(volume, zyx)) == pytest.approx(zyx)
    x, y, z = voxel_to_world(volume, (0.0, 0.0, 1.0))
    assert (x, y, z) == pytest.approx((-100.5 - 0.7, -120.25, -300.0))


def test_csv_readers_and_evaluation_interop(luna_root):
    annotations = read_annotations(luna_root / "annotations.csv")
    candidates = read_candidates(luna_root / "candidates.csv")
    assert [c.is_nodule for c in candidates] == [True, False]
    marks = [Candidate(c.seriesuid, c.x_mm, c.y_mm, c.z_mm, 0.9 if c.is_nodule else 0.1)
             for c in candidates]
    match = match_candidates(annotations, marks, [UID_A, UID_B])
    assert (match.true_positives, match.false_positives, match.false_negatives) == (1, 1, 1)
    assert Luna16Dataset(luna_root).candidates() == candidates


def test_malformed_csv_names_file_and_field(tmp_path):
    bad = tmp_path / "annotations.csv"
    bad.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,abc,1,2,3\n")
    with pytest.raises(DatasetError, match=r"annotations\.csv: field 'coordX': line 2: 'abc'"):
        read_annotations(bad)
    bad.write_text("seriesuid,coordX,coordY,coordZ\n1.2.3,1,1,2\n")
    with pytest.raises(DatasetError, match="diameter_mm") as info:
        read_annotations(bad)
    assert info.value.path == bad and info.value.field == "diameter_mm"
    cands = tmp_path / "candidates.csv"
    cands.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2.3,1,1,2,2\n")
    with pytest.raises(DatasetError, match="field 'class'"):
        read_candidates(cands)
    with pytest.raises(DatasetError, match="file not found"):
        read_annotations(tmp_path / "nope.csv")


def test_malformed_mhd_names_file_and_key(luna_root):
    mhd = luna_root / "subset0" / f"{UID_A}.mhd"
    (luna_root / "subset0" / f"{UID_A}.raw").unlink()
    with pytest.raises(DatasetError, match=r"field 'ElementDataFile'.*not found"):
        read_mhd(mhd)
    mhd.write_text("\n".join(l for l in mhd.read_text().splitlines() if not l.startswith("DimSize")))
    with pytest.raises(DatasetError, match=rf"{UID_A}\.mhd: field 'DimSize'"):
        read_mhd(mhd)


def test_dataset_root_errors(tmp_path):
    with pytest.raises(DatasetError, match="subset0..subset9"):
        Luna16Dataset(tmp_path)
    (tmp_path / "subset0").mkdir()
    _write_volume(tmp_path / "subset0" / f"{UID_A}.mhd")
    with pytest.raises(DatasetError, match=r"annotations\.csv: file not found"):
        Luna16Dataset(tmp_path)


@pytest.mark.parametrize("uid", [UID_A, UID_B])
def test_sphere_mask_centred_on_the_annotation(luna_root, uid):
    _, volume, annotations = Luna16Dataset(luna_root).load(uid)
    big = replace(annotations[0], diameter_mm=8.0)
    mask = sphere_mask(volume, [big])
    assert mask.dtype == np.uint16 and set(np.unique(mask)) == {0, 1}
    centre = world_to_voxel(volume, (big.x_mm, big.y_mm, big.z_mm))
    assert tuple(np.argwhere(mask == 1).mean(axis=0)) == pytest.approx(centre, abs=1e-6)
    # voxels of 0.7 x 0.8 x 2.5 mm inside a 4 mm radius: count them independently
    z, y, x = np.mgrid[-3:4, -8:9, -8:9]
    expected = int((((x * 0.7) ** 2 + (y * 0.8) ** 2 + (z * 2.5) ** 2) < 16.0).sum())
    assert int(mask.sum()) == expected
    outside = replace(big, x_mm=big.x_mm + 1000.0)
    assert sphere_mask(volume, [outside]).sum() == 0
