"""Kaggle Chest CT, NIH ChestX-ray14 and LC25000 loaders, and patient-level splits."""

import numpy as np
import pytest
from PIL import Image

from ai_engine.datasets import (
    CXR14_LABELS,
    KAGGLE_CLASSES,
    ChestXray14,
    DatasetError,
    KaggleChestCT,
    LC25000,
    k_fold,
    select,
    split_patients,
)


def _png(path, value, size=(12, 10), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 30)
    Image.new(mode, size, color).save(path)


# --- Kaggle Chest CT-Scan ---------------------------------------------------------------------

KAGGLE_FOLDERS = {
    "train/adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib": 10,
    "train/normal": 20,
    "valid/large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa": 30,
    "test/squamous.cell.carcinoma_left.hilum_T1_N2_M0_IIIa": 40,
    "test/adenocarcinoma": 50,
}


@pytest.fixture
def kaggle_root(tmp_path):
    for folder, value in KAGGLE_FOLDERS.items():
        _png(tmp_path / folder / f"img{value}.png", value)
        _png(tmp_path / folder / f"img{value}b.jpg", value)
    return tmp_path


def test_kaggle_labels_by_folder_prefix(kaggle_root):
    ds = KaggleChestCT(kaggle_root)
    assert len(ds) == 10
    got = {}
    for (image, label), sample in zip(ds, ds.samples):
        assert image.shape == (10, 12) and image.dtype == np.uint8
        if sample.path.suffix == ".png":
            got[int(image[0, 0])] = (KAGGLE_CLASSES[label], sample.split)
    assert got == {
        10: ("adenocarcinoma", "train"), 20: ("normal", "train"),
        30: ("large.cell.carcinoma", "valid"), 40: ("squamous.cell.carcinoma", "test"),
        50: ("adenocarcinoma", "test"),
    }
    assert KAGGLE_CLASSES.index("normal") == 2  # stable index


def test_kaggle_split_filter_and_flat_layout(kaggle_root, tmp_path_factory):
    test = KaggleChestCT(kaggle_root, split="test")
    assert sorted(KAGGLE_CLASSES[l] for _, l in test) == ["adenocarcinoma"] * 2 + ["squamous.cell.carcinoma"] * 2
    flat = tmp_path_factory.mktemp("flat")
    _png(flat / "normal" / "a.png", 5)
    assert [label for _, label in KaggleChestCT(flat)] == [2]


def test_kaggle_errors_name_the_file(kaggle_root):
    (kaggle_root / "train" / "mystery_folder").mkdir()
    with pytest.raises(DatasetError, match="mystery_folder.*class folder"):
        KaggleChestCT(kaggle_root)
    (kaggle_root / "train" / "mystery_folder").rmdir()
    broken = kaggle_root / "train" / "normal" / "zzz.png"
    broken.write_bytes(b"not a png")
    ds = KaggleChestCT(kaggle_root, split="train")
    with pytest.raises(DatasetError, match=r"zzz\.png: field 'image'"):
        list(ds)
    with pytest.raises(ValueError, match="split"):
        KaggleChestCT(kaggle_root, split="validation")


# --- NIH ChestX-ray14 -------------------------------------------------------------------------

CXR_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
              "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
CXR_ROWS = [
    "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143",
    "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143",
    "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171",
    "00000003_000.png,Hernia|Pleural_Thickening|Nodule,0,3,81,F,PA,2582,2991,0.143,0.143",
]


@pytest.fixture
def cxr_root(tmp_path):
    (tmp_path / "Data_Entry_2017.csv").write_text(CXR_HEADER + "\n" + "\n".join(CXR_ROWS) + "\n")
    for i, row in enumerate(CXR_ROWS):
        sub = "images" if i < 2 else "images_002/images"  # Kaggle's split image folders too
        _png(tmp_path / sub / row.split(",")[0], 60 + i)
    (tmp_path / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000003_000.png\n")
    (tmp_path / "test_list.txt").write_text("00000002_000.png\n")
    return tmp_path


def test_chestxray14_multi_hot_labels(cxr_root):
    ds = ChestXray14(cxr_root)
    assert len(CXR14_LABELS) == 14 and len(ds) == 4
    items = list(ds)
    image, labels = items[1]
    assert image.shape == (10, 12) and int(image[0, 0]) == 61
    assert labels.dtype == np.float32 and labels.shape == (14,)
    assert [CXR14_LABELS[i] for i in np.nonzero(labels)[0]] == ["Cardiomegaly", "Emphysema"]
    assert items[2][1].sum() == 0  # No Finding
    assert {CXR14_LABELS[i] for i in np.nonzero(items[3][1])[0]} == {"Hernia", "Pleural_Thickening", "Nodule"}
    assert [e.patient_id for e in ds.entries] == ["1", "1", "2", "3"]


def test_chestxray14_official_split_lists(cxr_root):
    assert [e.image_index for e in ChestXray14(cxr_root, split="test").entries] == ["00000002_000.png"]
    assert len(ChestXray14(cxr_root, split="train_val")) == 3


def test_chestxray14_errors(cxr_root):
    (cxr_root / "images" / "00000001_000.png").unlink()
    with pytest.raises(DatasetError, match="00000001_000.png: field 'Image Index'"):
        ChestXray14(cxr_root)[0]
    csv = cxr_root / "Data_Entry_2017.csv"
    csv.write_text(CXR_HEADER + "\n" + CXR_ROWS[0].replace("Cardiomegaly", "Cardiomegally") + "\n")
    with pytest.raises(DatasetError, match=r"Data_Entry_2017\.csv: field 'Finding Labels': line 2"):
        ChestXray14(cxr_root)


# --- LC25000 ----------------------------------------------------------------------------------


def test_lc25000_nested_layout(tmp_path):
    base = tmp_path / "lung_colon_image_set" / "lung_image_sets"
    for name, value in (("lung_aca", 200), ("lung_n", 100), ("lung_scc", 50)):
        for n in range(2):
            _png(base / name / f"{name.replace('_', '')}{n + 1}.jpeg", value, mode="RGB")
    ds = LC25000(tmp_path)
    assert len(ds) == 6
    for image, label in ds:
        assert image.shape == (10, 12, 3)
        expected = {0: 200, 1: 100, 2: 50}[label]
        assert abs(int(image[5, 5, 0]) - expected) <= 3  # JPEG is lossy
    (base / "lung_scc" / "lungscc1.jpeg").unlink()
    (base / "lung_scc" / "lungscc2.jpeg").unlink()
    (base / "lung_scc").rmdir()
    with pytest.raises(DatasetError, match=r"\['lung_scc'\] not found"):
        LC25000(tmp_path)


# --- splits -----------------------------------------------------------------------------------


def test_split_patients_70_15_15():
    ids = [f"p{i:02d}" for i in range(20)]
    split = split_patients(ids + ids[:5], seed=3)  # duplicates: a patient's second scan
    assert (len(split.train), len(split.val), len(split.test)) == (14, 3, 3)
    assert set(split.train) | set(split.val) | set(split.test) == set(ids)
    assert not (set(split.train) & set(split.val) or set(split.train) & set(split.test))
    assert split == split_patients(list(reversed(ids)), seed=3)  # order-independent
    assert split != split_patients(ids, seed=4)


def test_k_fold_each_patient_tested_once():
    ids = list(range(23))
    folds = k_fold(ids, k=5, seed=1)
    tested = [p for f in folds for p in f.test]
    assert sorted(tested) == ids
    for f in folds:
        assert not set(f.train) & set(f.test) and len(f.train) + len(f.test) == 23
    with pytest.raises(ValueError, match="k must be"):
        k_fold(ids[:3], k=5)


def test_select_keeps_a_patients_scans_together():
    scans = [("scan1", "A"), ("scan2", "A"), ("scan3", "B"), ("scan4", "C")]
    split = split_patients([p for _, p in scans], fractions=(0.34, 0.33, 0.33), seed=0)
    parts = [select(scans, lambda s: s[1], getattr(split, n)) for n in ("train", "val", "test")]
    assert sorted(s for part in parts for s in part) == sorted(scans)
    for part in parts:
        assert len({p for _, p in part}) <= 1
