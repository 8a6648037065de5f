"""Test factories: Instance rows and InstanceTags built from real pydicom datasets.

Tags are read with the receiver's own ``receive.tags.technical_tags`` from datasets made by the
fictitious modality (CT) or built here with the attributes a real CR/DX, SM or MR object carries,
so selection is tested against the tags it will really get.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from ai_engine.findings import CTVolume
from dicom_node.assemble.series import (
    DX_FOR_PRESENTATION,
    ENHANCED_CT_IMAGE,
    VL_WHOLE_SLIDE_MICROSCOPY,
    InstanceTags,
)
from dicom_node.db.models import Instance, Study
from dicom_node.jobs.lifecycle import open_job
from dicom_node.modality import UID_ROOT, FictitiousPatient, SeriesUIDs, ct_slices
from dicom_node.privacy.pseudonym import Pseudonymizer
from dicom_node.receive.tags import technical_tags

PSEUDO = Pseudonymizer("test-site-key-0123456789")
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def ct_series(
    n: int = 40,
    seed: int = 1,
    series_number: int = 2,
    slice_mm: float = 1.25,
    size: int = 16,
) -> list[Dataset]:
    """``n`` axial CT slices from the fictitious modality (tiny images: only the tags matter)."""
    volume = CTVolume(
        hu=np.zeros((n, size, size), dtype=np.float32),
        spacing_mm=(0.7, 0.7, slice_mm),
        origin_mm=(-5.6, -5.6, -100.0),
    )
    uids = SeriesUIDs.from_seed(seed)
    uids = SeriesUIDs(
        uids.study, generate_uid(UID_ROOT, entropy_srcs=[f"s{seed}-{series_number}"]), uids.frame_of_reference
    )
    return ct_slices(volume, FictitiousPatient.from_seed(seed), uids, series_number=series_number)


def projection(
    modality: str, sop_class: str, series_number: int, view: str | None, body_part: str | None, instance_number: int = 1
) -> Dataset:
    """A CR/DX/SM/MR-like object with the attributes selection reads."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(UID_ROOT)
    ds.SeriesInstanceUID = generate_uid(UID_ROOT, entropy_srcs=[f"{modality}-{series_number}"])
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = 256, 256
    ds.BitsAllocated = 16 if modality != "SM" else 8
    ds.SamplesPerPixel = 1 if modality != "SM" else 3
    ds.PhotometricInterpretation = "MONOCHROME2" if modality != "SM" else "RGB"
    if view is not None:
        ds.ViewPosition = view
    if body_part is not None:
        ds.BodyPartExamined = body_part
    return ds


def dx(series_number: int, view: str | None, body_part: str | None = "CHEST", instance_number: int = 1) -> Dataset:
    return projection("DX", DX_FOR_PRESENTATION, series_number, view, body_part, instance_number)


def sm(series_number: int, instance_number: int = 1) -> Dataset:
    ds = projection("SM", VL_WHOLE_SLIDE_MICROSCOPY, series_number, None, None, instance_number)
    ds.NumberOfFrames = 12
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    return ds


def mr(series_number: int, instance_number: int = 1) -> Dataset:
    return projection("MR", MR_IMAGE, series_number, None, "CHEST", instance_number)


def enhanced_ct(frames: int, series_number: int = 5) -> Dataset:
    ds = projection("CT", ENHANCED_CT_IMAGE, series_number, None, "CHEST")
    ds.NumberOfFrames = frames
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.FrameOfReferenceUID = generate_uid(UID_ROOT)
    return ds


def series_key(ds: Dataset) -> str:
    return PSEUDO.uid(str(ds.SeriesInstanceUID))


def to_tags(datasets: Sequence[Dataset], first_id: int = 1) -> list[InstanceTags]:
    """InstanceTags as selection gets them (ids are positions in ``datasets`` + first_id)."""
    return [InstanceTags(first_id + i, series_key(ds), technical_tags(ds, PSEUDO)) for i, ds in enumerate(datasets)]


def add_study(session: Session, study_uid: str, received_at: datetime, calling_ae: str = "MODALITY") -> Study:
    """A Study row as the receiver creates it, with its RECEIVED job."""
    study = Study(
        study_key=PSEUDO.uid(study_uid),
        patient_key=PSEUDO.patient_id("SYN"),
        first_received_at=received_at,
        last_received_at=received_at,
        calling_ae=calling_ae,
    )
    session.add(study)
    session.flush()
    open_job(session, study)
    return study


def add_instances(session: Session, study: Study, datasets: Sequence[Dataset], received_at: datetime) -> list[Instance]:
    """Instance rows as the receiver inserts them (spool path and hash made up: no files here)."""
    rows = []
    for ds in datasets:
        sop_key = PSEUDO.uid(str(ds.SOPInstanceUID))
        row = Instance(
            study=study,
            series_key=series_key(ds),
            sop_key=sop_key,
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            modality=str(ds.Modality),
            spool_path=f"spool/{sop_key}.dcm",
            sha256=hashlib.sha256(sop_key.encode()).hexdigest(),
            size_bytes=1024,
            received_at=received_at,
            study_version=study.version,
            tags=technical_tags(ds, PSEUDO),
        )
        session.add(row)
        rows.append(row)
    study.last_received_at = received_at
    session.flush()
    return rows


def late_instance(session: Session, study: Study, ds: Dataset, received_at: datetime) -> None:
    """What the receiver does with an instance for a completed study: re-open it as a new version."""
    if study.completed_at is not None:
        study.version += 1
        study.completed_at = None
    add_instances(session, study, [ds], received_at)
    open_job(session, study)
