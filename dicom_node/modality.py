"""A fictitious CT modality: writes a volume as a real-looking CT Image Storage series.

Used by ``pulmonode synth ct``, the demo, the tests and the benchmarks. The patient is invented;
every identifier is generated from the seed so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from ai_engine.findings import CTVolume

UID_ROOT = "1.2.826.0.1.3680043.10.1234."  # example root for synthetic studies


@dataclass(frozen=True)
class FictitiousPatient:
    """Who the synthetic study claims to be (all invented)."""

    name: str = "DOE^JANE^Q"
    patient_id: str = "SYN0001"
    birth_date: str = "19580412"
    sex: str = "F"
    age: str = "067Y"
    accession_number: str = "ACC0001"
    referring_physician: str = "HOUSE^GREGORY"
    institution: str = "General Hospital of Nowhere"
    study_date: str = "20261120"
    study_time: str = "101500"
    study_id: str = "1"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_seed(cls, seed: int) -> "FictitiousPatient":
        rng = np.random.default_rng(seed)
        first = ["JANE", "JOHN", "ALEX", "MARIA", "WEI", "FATIMA", "OLA", "RAVI"][seed % 8]
        last = ["DOE", "ROE", "SMITH", "MÜLLER", "NGUYEN", "GARCIA", "KOWALSKI", "OKAFOR"][(seed // 8) % 8]
        year = 1940 + int(rng.integers(0, 40))
        return cls(
            name=f"{last}^{first}",
            patient_id=f"SYN{seed:06d}",
            birth_date=f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}",
            sex="F" if seed % 2 else "M",
            age=f"{2026 - year:03d}Y",
            accession_number=f"ACC{seed:07d}",
            study_id=str(seed % 100000),
        )


@dataclass(frozen=True)
class SeriesUIDs:
    study: str
    series: str
    frame_of_reference: str

    @classmethod
    def from_seed(cls, seed: int) -> "SeriesUIDs":
        return cls(
            study=generate_uid(UID_ROOT, entropy_srcs=[f"study-{seed}"]),
            series=generate_uid(UID_ROOT, entropy_srcs=[f"series-{seed}"]),
            frame_of_reference=generate_uid(UID_ROOT, entropy_srcs=[f"for-{seed}"]),
        )


def ct_slices(
    volume: CTVolume,
    patient: FictitiousPatient,
    uids: SeriesUIDs,
    series_number: int = 2,
    series_description: str = "CHEST LOW DOSE 1.0 B45f",
) -> list[Dataset]:
    """One CT Image Storage dataset per axial slice (int16 stored, rescale slope 1, intercept -1024)."""
    hu = np.asarray(volume.hu)
    nz, ny, nx = hu.shape
    sx, sy, sz = volume.spacing_mm
    d = np.array(volume.direction, dtype=float).reshape(3, 3)
    row_dir, col_dir = d[:, 0], d[:, 1]
    stored = np.clip(np.rint(hu + 1024.0), -32768, 32767).astype(np.int16)
    slices = []
    for k in range(nz):
        ds = _ct_header(patient, uids, series_number, series_description)
        sop_uid = generate_uid(UID_ROOT, entropy_srcs=[uids.series, str(k)])
        ds.file_meta = _file_meta(sop_uid)
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        position = volume.index_to_mm((k, 0, 0))
        ds.ImagePositionPatient = [round(v, 4) for v in position]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row_dir, *col_dir)]
        ds.SliceLocation = round(position[2], 4)
        ds.PixelSpacing = [round(sy, 6), round(sx, 6)]  # row spacing (y), column spacing (x)
        ds.SliceThickness = round(sz, 4)
        ds.Rows, ds.Columns = ny, nx
        ds.PixelData = stored[k].tobytes()
        slices.append(ds)
    return slices


def write_ct_series(slices: list[Dataset], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in slices:
        path = out_dir / f"CT{int(ds.InstanceNumber):05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _ct_header(patient: FictitiousPatient, uids: SeriesUIDs, series_number: int, description: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: fictitious names may be non-ASCII
    ds.SOPClassUID = CTImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = patient.study_time
    ds.AccessionNumber = patient.accession_number
    ds.Modality = "CT"
    ds.Manufacturer = "pulmonode synthetic"
    ds.ManufacturerModelName = "Phantom CT"
    ds.InstitutionName = patient.institution
    ds.ReferringPhysicianName = patient.referring_physician
    ds.StudyDescription = "CT CHEST LOW DOSE SCREENING"
    ds.SeriesDescription = description
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = patient.age
    ds.BodyPartExamined = "CHEST"
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.StudyID = patient.study_id
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = uids.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = -600
    ds.WindowWidth = 1500
    ds.BurnedInAnnotation = "NO"
    for keyword, value in patient.extra.items():
        setattr(ds, keyword, value)
    return ds

