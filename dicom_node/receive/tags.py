"""The technical tags assembly and routing need, read once at receive time (cf. mercure's tag
sidecar). Identifiers become pseudonyms; no names, IDs, dates or free text are kept."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DSdecimal, DSfloat, IS

from dicom_node.privacy.pseudonym import Pseudonymizer

# Technical, non-identifying attributes copied as values (numbers, code strings).
TECHNICAL_KEYWORDS = (
    "Modality",
    "SOPClassUID",
    "ImageType",
    "Rows",
    "Columns",
    "PixelSpacing",
    "SliceThickness",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "ViewPosition",
    "BodyPartExamined",
    "BurnedInAnnotation",
    "InstanceNumber",
    "SeriesNumber",
    "AcquisitionNumber",
)
# Enhanced (multi-frame) objects keep geometry in the Shared Functional Groups (PS3.3 C.7.6.16).
SHARED_GROUP_KEYWORDS = {
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
}


@dataclass(frozen=True)
class InstanceKeys:
    """Pseudonymous identity of one received instance (keyed HMAC under the site key)."""

    study_key: str
    series_key: str
    sop_key: str
    patient_key: str


def instance_keys(ds: Dataset, pseudonymizer: Pseudonymizer) -> InstanceKeys:
    return InstanceKeys(
        study_key=pseudonymizer.uid(ds.StudyInstanceUID),
        series_key=pseudonymizer.uid(ds.SeriesInstanceUID),
        sop_key=pseudonymizer.uid(ds.SOPInstanceUID),
        patient_key=pseudonymizer.patient_id(str(ds.get("PatientID") or "")),
    )


def technical_tags(ds: Dataset, pseudonymizer: Pseudonymizer) -> dict[str, Any]:
    """Present attributes only; absent ones are left out rather than stored as null."""
    tags = {kw: json_value(ds[kw].value) for kw in TECHNICAL_KEYWORDS if kw in ds and ds[kw].value != ""}
    tags.update(_shared_group_tags(ds, tags))
    if ds.get("FrameOfReferenceUID"):
        tags["FrameOfReferenceKey"] = pseudonymizer.uid(str(ds.FrameOfReferenceUID))
    return tags


def _shared_group_tags(ds: Dataset, found: dict[str, Any]) -> dict[str, Any]:
    shared = ds.get("SharedFunctionalGroupsSequence")
    if not shared:
        return {}
    extra: dict[str, Any] = {}
    for sequence, keywords in SHARED_GROUP_KEYWORDS.items():
        items = shared[0].get(sequence)
        for kw in keywords:
            if items and kw in items[0] and kw not in found:
                extra[kw] = json_value(items[0][kw].value)
    return extra


def json_value(value: Any) -> Any:
    """A DICOM value as JSON: numbers stay numbers; a non-finite DS (e.g. "NaN") is kept as its
    string because JSON (and PostgreSQL's json type) has no NaN — assembly rejects it."""
    if isinstance(value, (list, MultiValue)):
        return [json_value(v) for v in value]
    if isinstance(value, (DSfloat, DSdecimal, float)):
        number = float(value)
        return number if math.isfinite(number) else str(value).strip()
    if isinstance(value, (IS, int)):
        return int(value)
    return str(value)
