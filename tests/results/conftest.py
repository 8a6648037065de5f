"""Fixtures for the result-object tests: a small CT study read back from real DICOM files, and
hand-built findings (two nodules, one nodule, none) in its grid."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ai_engine.findings import (
    CTFindings, LungRadsAssessment, ModelInfo, Nodule, NoduleType, Side, Subtype, Zone,
)
from dicom_node.results.common import AlgorithmInfo
from tests.helpers import write_study

SHAPE = (24, 48, 48)  # z, y, x
MODELS = (
    ModelInfo("unet3d", "1.0.0", "a" * 64, "demo", "synthetic", True),
    ModelInfo("densenet121-3d", "1.0.0", "b" * 64, "demo", "synthetic", True),
)


def make_uid_for(study_uid: str, version: int = 1):
    """What the worker does: 2.25. + an integer hash of (original study, version, kind)."""
    def uid_for(kind: str) -> str:
        digest = hashlib.sha256(f"{study_uid}|{version}|{kind}".encode()).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))
    return uid_for


def clock() -> datetime:
    return datetime(2026, 11, 25, 14, 30, 5)


def sphere(shape, centre_zyx, radius_vox) -> np.ndarray:
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    cz, cy, cx = centre_zyx
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius_vox ** 2


def nodule(label: int, mask: np.ndarray, **overrides) -> Nodule:
    zz, yy, xx = np.nonzero(mask == label)
    areas = np.bincount(zz, minlength=mask.shape[0])
    values = dict(
        label=label,
        centroid_mm=(float(xx.mean()) * 0.8, float(yy.mean()) * 0.8, float(zz.mean()) * 1.25 - 100.0),
        centroid_zyx=(float(zz.mean()), float(yy.mean()), float(xx.mean())),
        bbox_zyx=(int(zz.min()), int(yy.min()), int(xx.min()), int(zz.max()) + 1, int(yy.max()) + 1, int(xx.max()) + 1),
        key_slice=int(np.argmax(areas)),
        volume_mm3=round(float(zz.size) * 0.8 * 0.8 * 1.25, 1),
        long_axis_mm=8.4, short_axis_mm=7.2, mean_diameter_mm=7.8,
        mean_hu=21.5, max_hu=88.0,
        nodule_type=NoduleType.SOLID, solid_component_mm=None, calcified=False,
        side=Side.RIGHT, zone=Zone.UPPER, lobe="right upper lobe",
        detection_score=0.93, malignancy_probability=0.12,
        malignancy_by_model=(("densenet121-3d", 0.12),),
        lung_rads=LungRadsAssessment("2", "Continue annual screening with LDCT in 12 months"),
    )
    values.update(overrides)
    return Nodule(**values)


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> list[pydicom.Dataset]:
    """The CT slices, written by the fictitious modality and read back, sorted by z."""
    paths = write_study(tmp_path_factory.mktemp("ct"), seed=7, shape=SHAPE)
    slices = [pydicom.dcmread(p) for p in paths]
    return sorted(slices, key=lambda ds: float(ds.ImagePositionPatient[2]))


@pytest.fixture(scope="session")
def study_dir(study: list[pydicom.Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(study[0].filename).parent


@pytest.fixture(scope="session")
def two_nodules() -> CTFindings:
    mask = np.zeros(SHAPE, dtype=np.uint16)
    mask[sphere(SHAPE, (12, 24, 14), 4.0)] = 1
    mask[sphere(SHAPE, (8, 20, 34), 2.5)] = 2
    first = nodule(1, mask)
    second = nodule(
        2, mask, long_axis_mm=5.1, short_axis_mm=3.9, mean_diameter_mm=4.5, mean_hu=-480.0, max_hu=-120.0,
        nodule_type=NoduleType.PART_SOLID, solid_component_mm=2.2, calcified=True, side=Side.LEFT,
        zone=Zone.LOWER, lobe="left lower lobe", malignancy_probability=0.81,
        malignancy_by_model=(("densenet121-3d", 0.77), ("convnext-tiny-3d", 0.85)),
        subtype=Subtype.ADENOCARCINOMA, subtype_probabilities=(("adenocarcinoma", 0.7),),
        lung_rads=LungRadsAssessment("4B", "Chest CT or PET/CT; tissue sampling", s_modifier=True),
    )
    return CTFindings(
        nodules=(first, second), label_mask=mask, models=MODELS,
        exam_lung_rads=LungRadsAssessment("4B", "Chest CT or PET/CT; tissue sampling"),
    )


@pytest.fixture(scope="session")
def one_nodule() -> CTFindings:
    mask = np.zeros(SHAPE, dtype=np.uint16)
    mask[sphere(SHAPE, (12, 24, 14), 4.0)] = 1
    return CTFindings(
        nodules=(nodule(1, mask),), label_mask=mask, models=MODELS,
        exam_lung_rads=LungRadsAssessment("2", "Continue annual screening with LDCT in 12 months"),
    )


@pytest.fixture(scope="session")
def no_nodules() -> CTFindings:
    return CTFindings(
        nodules=(), label_mask=np.zeros(SHAPE, dtype=np.uint16), models=(),
        exam_lung_rads=LungRadsAssessment("1", "Continue annual screening with LDCT in 12 months"),
    )


@pytest.fixture(scope="session")
def algorithm() -> AlgorithmInfo:
    return AlgorithmInfo.from_models(MODELS, version="0.1.0", device_uid="2.25.1234567890")


@pytest.fixture(scope="session")
def uid_for(study: list[pydicom.Dataset]):
    return make_uid_for(study[0].StudyInstanceUID)
