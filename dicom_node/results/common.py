"""What every result builder shares: the injected UID factory and clock, the fixed series numbers,
the algorithm's identity, and copying the Patient / General Study modules from the sources.

Builders run on the de-identified study; the privacy step later maps UIDs and the patient module
back onto the original study, so everything patient/study-level is *copied* from the sources here
(Type 2 attributes kept present, empty if the source lacks them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset

from ai_engine.findings import ModelInfo
from dicom_node.results.errors import SourceError

UidFor = Callable[[str], str]  # kind ("seg-series", "sr-instance", ...) -> deterministic UID
Clock = Callable[[], datetime]

MANUFACTURER = "pulmonode"

# Series Number per result kind: fixed so a PACS shows them in a stable order after the CT.
SERIES_NUMBER = {"seg": 901, "sr": 902, "kos": 903, "pdf": 904, "sr-not-eligible": 902}
SERIES_DESCRIPTION = {
    "seg": "AI lung nodule segmentation",
    "sr": "AI lung nodule measurements (TID 1500)",
    "kos": "AI key images",
    "pdf": "AI lung nodule report",
    "sr-not-eligible": "AI lung nodules: study NOT analysed",
}

# Patient (C.7.1.1) and General Study (C.7.2.1) Type 2 attributes: always present, maybe empty.
PATIENT_STUDY_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)
# Copied when the source has them (Type 3 / Patient Study module).
PATIENT_STUDY_OPTIONAL = (
    "IssuerOfPatientID", "PatientAge", "PatientSize", "PatientWeight", "StudyDescription",
    "PatientIdentityRemoved", "DeidentificationMethod",
)


@dataclass(frozen=True)
class AlgorithmInfo:
    """The AI pipeline as a device: who made the results (SEG algorithm identification, SR observer)."""

    name: str  # Algorithm Name (LO)
    version: str  # Algorithm Version (LO) and Software Versions
    device_uid: str  # Device Observer UID: stable per installation, not per study
    models: tuple[ModelInfo, ...] = ()
    manufacturer: str = MANUFACTURER
    model_name: str = "pulmonode CT nodule pipeline"
    device_serial_number: str = "1"

    @classmethod
    def from_models(cls, models: Sequence[ModelInfo], version: str, device_uid: str) -> AlgorithmInfo:
        return cls(name="pulmonode-ct-nodules", version=version, device_uid=device_uid, models=tuple(models))

    @property
    def parameters(self) -> dict[str, str]:
        """Algorithm Parameters: one entry per trained model, with its provenance."""
        return {
            m.name: f"{m.version} sha256:{m.sha256[:12]} trained_on:{m.trained_on}" for m in self.models
        }


def check_sources(sources: Sequence[Dataset]) -> None:
    """The builders need one non-empty, single-study, single-series list of images."""
    if not sources:
        raise SourceError("no source datasets given")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        values = {str(ds.get(keyword, "")) for ds in sources}
        if len(values) != 1:
            raise SourceError(f"sources must share one {keyword}; found {len(values)} values")


def with_type2(source: Dataset) -> Dataset:
    """highdicom reads the patient/study Type 2 attributes off its first source/evidence dataset and
    fails when de-identification removed one: hand it a copy with them present (empty)."""
    missing = [keyword for keyword in PATIENT_STUDY_TYPE2 if keyword not in source]
    if not missing:
        return source
    patched = copy.deepcopy(source)
    for keyword in missing:
        setattr(patched, keyword, "")
    return patched


def copy_patient_study(source: Dataset, target: Dataset) -> None:
    """Copy the Patient and General Study modules (Type 2 present even when empty)."""
    for keyword in PATIENT_STUDY_TYPE2:
        setattr(target, keyword, source.get(keyword, ""))
    for keyword in PATIENT_STUDY_OPTIONAL:
        if keyword in source:
            setattr(target, keyword, source[keyword].value)
    target.StudyInstanceUID = source.StudyInstanceUID
    if "SpecificCharacterSet" in source:
        target.SpecificCharacterSet = source.SpecificCharacterSet


def dicom_date_time(when: datetime) -> tuple[str, str]:
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def stamp(ds: Dataset, when: datetime, kind: str, synthetic_trained: bool) -> None:
    """Dates and times from the injected clock (not 'now'); a series description a human reads."""
    date, time = dicom_date_time(when)
    ds.ContentDate, ds.ContentTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SeriesDescription = SERIES_DESCRIPTION[kind] + (" [RUO synthetic-trained]" if synthetic_trained else " [RUO]")
    for equipment in ds.get("ContributingEquipmentSequence", []):  # highdicom stamps it with 'now'
        equipment.ContributionDateTime = date + time


def uids(uid_for: UidFor, kind: str) -> tuple[str, str]:
    """(Series Instance UID, SOP Instance UID) of one result kind."""
    return uid_for(f"{kind}-series"), uid_for(f"{kind}-instance")
