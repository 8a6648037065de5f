"""Loaders for the real datasets, in their published file formats (no downloads here).

Public API (stable)::

    # LUNA16 (luna16.py): root/subset0..9/<seriesuid>.mhd(+.raw), root/annotations.csv,
    # root/candidates.csv or candidates_V2.csv; world coordinates in mm
    Luna16Dataset(root, subsets: Iterable[int] | None = None)
        .seriesuids -> tuple[str, ...]; len(); .subset_of(uid) -> int
        .load(uid) -> Luna16Case; iter() -> Luna16Case NamedTuple (seriesuid, volume: CTVolume,
        annotations: tuple[LunaAnnotation, ...]); .annotations_for(uid); .candidates()
    read_annotations(path) -> tuple[LunaAnnotation, ...]  # seriesuid, x_mm, y_mm, z_mm, diameter_mm
    read_candidates(path) -> tuple[LunaCandidate, ...]    # seriesuid, x_mm, y_mm, z_mm, is_nodule
    read_mhd(path) -> CTVolume                            # SimpleITK; HU array [z, y, x]
    world_to_voxel(volume, (x, y, z) mm) -> (z, y, x) continuous index
    voxel_to_world(volume, (z, y, x)) -> (x, y, z) mm
    sphere_mask(volume, annotations) -> uint16 [z, y, x] label map (label i+1 = annotation i,
        voxels strictly within diameter/2 of its centre): the usual LUNA16 reference mask
    (LunaAnnotation is ai_engine.evaluate.Annotation, so annotations can
     be passed straight to evaluate.match_candidates.)

    # patient-level splits (splits.py)
    split_patients(patient_ids, fractions=(0.70, 0.15, 0.15), seed=0) -> PatientSplit(train, val, test)
    k_fold(patient_ids, k=5, seed=0) -> tuple[Fold(index, train, test), ...]
    select(items, patient_of, patients) -> list

    # Kaggle Chest CT-Scan images (kaggle_chest_ct.py)
    KaggleChestCT(root, split: "train" | "valid" | "test" | None = None, mode="L")
        iter / [i] -> (uint8 image, label); .samples: tuple[ImageSample(path, label, split)]
    KAGGLE_CLASSES = ("adenocarcinoma", "large.cell.carcinoma", "normal",
                      "squamous.cell.carcinoma")   # label = index; folders matched by prefix
    KAGGLE_SUBTYPE_OF: class name -> findings.Subtype | None

    # NIH ChestX-ray14 (chestxray14.py)
    ChestXray14(root, split: "train_val" | "test" | None = None, mode="L")
        iter / [i] -> (uint8 image, float32 multi-hot[14]); .entries: tuple[ChestXrayEntry]
    CXR14_LABELS (14 names, official order); read_entries(csv) -> tuple[ChestXrayEntry, ...]

    # LC25000 lung histopathology (lc25000.py)
    LC25000(root, mode="RGB"): iter / [i] -> (uint8 [H, W, 3], label)
    LC25000_CLASSES = ("lung_aca", "lung_n", "lung_scc")

Errors: DatasetError (a ValueError) with ``.path`` and ``.field``; its message names both.
"""

from ai_engine.datasets.chestxray14 import LABELS as CXR14_LABELS
from ai_engine.datasets.chestxray14 import ChestXray14, ChestXrayEntry, read_entries
from ai_engine.datasets.errors import DatasetError
from ai_engine.datasets.kaggle_chest_ct import CLASS_NAMES as KAGGLE_CLASSES
from ai_engine.datasets.kaggle_chest_ct import SUBTYPE_OF as KAGGLE_SUBTYPE_OF
from ai_engine.datasets.kaggle_chest_ct import ImageSample, KaggleChestCT, class_of_folder
from ai_engine.datasets.lc25000 import CLASS_NAMES as LC25000_CLASSES
from ai_engine.datasets.lc25000 import LC25000
from ai_engine.datasets.luna16 import (
    Luna16Case,
    Luna16Dataset,
    LunaAnnotation,
    LunaCandidate,
    read_annotations,
    read_candidates,
    read_mhd,
    sphere_mask,
    voxel_to_world,
    world_to_voxel,
)
from ai_engine.datasets.splits import Fold, PatientSplit, k_fold, select, split_patients

__all__ = [
    "CXR14_LABELS", "KAGGLE_CLASSES", "KAGGLE_SUBTYPE_OF", "LC25000_CLASSES", "ChestXray14",
    "ChestXrayEntry", "DatasetError", "Fold", "ImageSample", "KaggleChestCT", "LC25000",
    "Luna16Case", "Luna16Dataset", "LunaAnnotation", "LunaCandidate", "PatientSplit",
    "class_of_folder", "k_fold", "read_annotations", "read_candidates", "read_entries",
    "read_mhd", "select", "sphere_mask", "split_patients", "voxel_to_world", "world_to_voxel",
]
