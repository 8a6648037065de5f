"""Inputs that are odd but valid at receive time: accepted, stored byte-exact, the technical
tags assembly needs recorded (assembly decides), and no PHI in the database or the logs."""

from __future__ import annotations

import json
import logging

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import MetaData, select

from dicom_node.modality import FictitiousPatient
from tests.helpers import write_study
from tests.receive.builders import fresh_ct
from tests.receive.scu import send_datasets, storescu
from tests.receive.test_store import dataset_bytes


def test_nan_rescale_is_accepted_and_recorded(sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url)
    ds = fresh_ct()
    ds.RescaleSlope = "NaN"
    assert send_datasets(scp.port, [ds])[0].status == 0
    [inst] = scp.instances()
    assert inst.tags["RescaleSlope"] == "NaN"  # kept as text (JSON has no NaN); assembly rejects it


@pytest.mark.parametrize(
    ("keyword", "value", "tag_value"),
    [
        ("ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"], ["ORIGINAL", "PRIMARY", "LOCALIZER"]),
        ("BurnedInAnnotation", "YES", "YES"),
        ("InstanceNumber", 1, 1),  # a one-slice CT series: assembly judges completeness
    ],
    ids=["localizer", "burned-in annotation", "one-slice CT"],
)
def test_assembly_concerns_are_accepted_with_their_tag(keyword, value, tag_value, sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url)
    ds = fresh_ct()
    setattr(ds, keyword, value)
    assert send_datasets(scp.port, [ds])[0].status == 0
    [inst] = scp.instances()
    assert inst.tags[keyword] == tag_value


CHARACTER_SETS = {
    "ISO_IR 100": ("ISO_IR 100", "MÜLLER^JÖRG"),
    "ISO_IR 192": ("ISO_IR 192", "ΓΙΑΝΝΗΣ^ΖΩΗ"),
    "ISO 2022 IR 87": (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
}


@pytest.mark.parametrize("charset", list(CHARACTER_SETS))
def test_non_ascii_names_in_several_character_sets_are_stored_byte_exact(charset, sqlite_url, scp_factory, tmp_path):
    scp = scp_factory(sqlite_url)
    specific, name = CHARACTER_SETS[charset]
    patient = FictitiousPatient(name=name, patient_id="SYNCS01", extra={"SpecificCharacterSet": specific})
    [path] = write_study(tmp_path / "cs", seed=21, shape=(1, 64, 64), patient=patient)
    assert dcmread(path).PatientName == name
    result = storescu(scp.port, [path])
    assert result.returncode == 0, result.stderr
    [inst] = scp.instances()
    stored = scp.path(inst.spool_path)
    assert dataset_bytes(stored) == dataset_bytes(path)
    assert str(dcmread(stored).PatientName) == name
    assert name.split("^")[0] not in json.dumps(inst.tags, ensure_ascii=False)


def phi_laden() -> tuple[Dataset, list[str]]:
    """A CT slice with PHI in private tags and nested sequences, and the PHI strings in it."""
    ds = fresh_ct()
    block = ds.private_block(0x0029, "ACME SCANNER 1.0", create=True)
    block.add_new(0x10, "LO", "PRIVATE-PHI-ZANZIBAR")
    other = Dataset()
    other.PatientID = "OTHER-ID-QUIXOTE"
    other.IssuerOfPatientID = "HOSPITAL-XYLOPHON"
    request = Dataset()
    request.RequestedProcedureDescription = "NESTED-PHI-KUMQUAT"
    inner = Dataset()
    inner.PersonName = "NESTED^VOLDEMORT"
    request.ReferencedStudySequence = [inner]
    ds.OtherPatientIDsSequence = [other]
    ds.RequestAttributesSequence = [request]
    phi = [str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber, ds.StudyInstanceUID,
           ds.SOPInstanceUID, ds.SeriesInstanceUID, "ZANZIBAR", "QUIXOTE", "XYLOPHON", "KUMQUAT", "VOLDEMORT"]
    return ds, phi


def database_text(scp) -> str:  # type: ignore[no-untyped-def]
    tables = MetaData()
    tables.reflect(scp.sessions.kw["bind"])
    with scp.sessions() as s:
        return "\n".join(repr(row) for table in tables.sorted_tables for row in s.execute(select(table)))


def test_phi_in_private_tags_and_sequences_stays_out_of_db_and_logs(db_url, scp_factory, caplog):
    caplog.set_level(logging.DEBUG)
    scp = scp_factory(db_url)
    ds, phi = phi_laden()
    bad = fresh_ct()
    bad.PatientName = "REJECTED^PHI^PERSON"
    bad.PixelData = bad.PixelData[:-2]  # refused: its PHI must not reach the log either
    results = send_datasets(scp.port, [ds, bad])
    assert [r.status for r in results] == [0, 0xA902]
    [inst] = scp.instances()
    assert dcmread(scp.path(inst.spool_path))[0x0029, 0x1010].value == "PRIVATE-PHI-ZANZIBAR"  # kept as sent

    text = database_text(scp)
    assert inst.sop_key in text  # the dump is real
    assert [value for value in phi if value in text] == []
    assert "C-STORE stored" in caplog.text and "C-STORE refused" in caplog.text  # the log is real
    assert [value for value in [*phi, "REJECTED"] if value in caplog.text] == []
    assert inst.sop_key in caplog.text


def test_disk_below_watermark_refuses_with_out_of_resources(sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url, min_free_disk_mb=10**9)
    [result] = send_datasets(scp.port, [fresh_ct()])
    assert (result.status, "disk below" in result.error_comment) == (0xA700, True)
    assert scp.instances() == [] and not list(scp.settings.data_dir.rglob("*.part"))


def test_database_unavailable_refuses_with_out_of_resources(scp_factory, tmp_path):
    from tests.conftest import free_port

    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    scp = scp_factory(dead)
    [result] = send_datasets(scp.port, [fresh_ct()])
    assert (result.status, "database unavailable" in result.error_comment) == (0xA700, True)
    assert not [p for p in scp.settings.data_dir.rglob("*") if p.suffix in (".dcm", ".part")]


def as_class(sop_class: str, modality: str, *, frames: int = 1, samples: int = 1) -> Dataset:
    """A fresh 64×64 instance of another storage class, with pixel data to match its header."""
    ds = fresh_ct()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality = modality
    if samples == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
        measures = Dataset()
        measures.PixelSpacing = [0.5, 0.5]
        measures.SliceThickness = 2.0
        shared = Dataset()
        shared.PixelMeasuresSequence = [measures]
        ds.SharedFunctionalGroupsSequence = [shared]
        del ds.PixelSpacing, ds.SliceThickness
    ds.PixelData = bytes(64 * 64 * frames * samples * ds.BitsAllocated // 8)
    return ds


@pytest.mark.parametrize(
    ("sop_class", "modality", "frames", "samples"),
    [
        ("1.2.840.10008.5.1.4.1.1.2.1", "CT", 3, 1),  # Enhanced CT, geometry in functional groups
        ("1.2.840.10008.5.1.4.1.1.1", "CR", 1, 1),
        ("1.2.840.10008.5.1.4.1.1.1.1", "DX", 1, 1),  # DX for presentation
        ("1.2.840.10008.5.1.4.1.1.1.1.1", "DX", 1, 1),  # DX for processing
        ("1.2.840.10008.5.1.4.1.1.7", "OT", 1, 3),  # Secondary Capture, RGB
        ("1.2.840.10008.5.1.4.1.1.77.1.6", "SM", 2, 3),  # VL Whole Slide Microscopy
        ("1.2.840.10008.5.1.4.1.1.77.1.4", "XC", 1, 3),  # VL Photographic
    ],
    ids=["enhanced-ct", "cr", "dx-presentation", "dx-processing", "secondary-capture", "wsi", "vl-photo"],
)
def test_other_storage_classes_are_accepted(sop_class, modality, frames, samples, sqlite_url, scp_factory):
    scp = scp_factory(sqlite_url)
    ds = as_class(sop_class, modality, frames=frames, samples=samples)
    short = as_class(sop_class, modality, frames=frames, samples=samples)
    short.PixelData = short.PixelData[: len(short.PixelData) // 2]
    assert [r.status for r in send_datasets(scp.port, [ds, short])] == [0, 0xA902]
    [inst] = scp.instances()
    assert (inst.sop_class_uid, inst.modality, inst.tags["SamplesPerPixel"]) == (sop_class, modality, samples)
    if frames > 1:
        assert inst.tags["NumberOfFrames"] == frames
    if sop_class.endswith(".2.1"):
        assert (inst.tags["PixelSpacing"], inst.tags["SliceThickness"]) == ([0.5, 0.5], 2.0)
