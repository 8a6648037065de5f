"""build_results: one call, deterministic UIDs, patient/study copied, every object valid."""

from __future__ import annotations

import copy
import io

import pytest

from dicom_node.results import build_results
from tests.results.conftest import clock, make_uid_for
from tests.results.validate import dciodvfy, round_trip, write


def _uids(bundle) -> list[tuple[str, str]]:
    return [(ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in bundle.datasets]


def _bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_same_inputs_give_same_objects(study, two_nodules, algorithm):
    first = build_results(study, two_nodules, algorithm, make_uid_for("1.2.3"), clock)
    second = build_results(study, two_nodules, algorithm, make_uid_for("1.2.3"), clock)
    assert _uids(first) == _uids(second)
    assert [_bytes(ds) for ds in first.datasets] == [_bytes(ds) for ds in second.datasets]
    assert first.pdf_bytes == second.pdf_bytes


def test_uids_are_per_version_and_kind(study, two_nodules, algorithm):
    v1 = _uids(build_results(study, two_nodules, algorithm, make_uid_for("1.2.3", 1), clock))
    v2 = _uids(build_results(study, two_nodules, algorithm, make_uid_for("1.2.3", 2), clock))
    flat = [uid for pair in v1 + v2 for uid in pair]
    assert len(set(flat)) == len(flat) == 16


def test_bundle_objects_share_the_study(study, two_nodules, algorithm, uid_for):
    bundle = build_results(study, two_nodules, algorithm, uid_for, clock)
    assert [ds.Modality for ds in bundle.datasets] == ["SEG", "SR", "KO", "DOC"]
    assert [int(ds.SeriesNumber) for ds in bundle.datasets] == [901, 902, 903, 904]
    for ds in bundle.datasets:
        back = round_trip(ds)
        assert back.StudyInstanceUID == study[0].StudyInstanceUID
        assert back.PatientID == study[0].PatientID and back.PatientName == study[0].PatientName


def test_no_nodules_gives_sr_and_pdf_only(study, no_nodules, algorithm, uid_for):
    bundle = build_results(study, no_nodules, algorithm, uid_for, clock)
    assert bundle.seg is None and bundle.kos is None
    assert [ds.Modality for ds in bundle.datasets] == ["SR", "DOC"]


def test_type2_patient_study_attributes_stay_present(study, one_nodule, algorithm, uid_for, tmp_path):
    """De-identified sources may lack Type 2 attributes; every object still carries them, empty."""
    stripped = [copy.deepcopy(ds) for ds in study]
    for ds in stripped:
        for keyword in ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
            delattr(ds, keyword)
    bundle = build_results(stripped, one_nodule, algorithm, uid_for, clock)
    for index, ds in enumerate(bundle.datasets):
        back = round_trip(ds)
        for keyword in ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
            assert keyword in back and back[keyword].value in ("", None), (back.Modality, keyword)
        report = dciodvfy(write(ds, tmp_path / f"{index}.dcm"))
        assert report.errors == [], (back.Modality, report.errors)


@pytest.mark.parametrize("case", ["two_nodules", "one_nodule", "no_nodules"])
def test_every_object_passes_dciodvfy(case, request, study, algorithm, uid_for, tmp_path):
    bundle = build_results(study, request.getfixturevalue(case), algorithm, uid_for, clock)
    for index, ds in enumerate(bundle.datasets):
        report = dciodvfy(write(ds, tmp_path / f"{index}.dcm"))
        assert report.errors == [], (ds.Modality, report.errors)
        unexpected = [w for w in report.warnings if "99PULMONODE" not in w]
        assert unexpected == [], (ds.Modality, unexpected)


def test_non_ascii_patient_name_survives(tmp_path, one_nodule, algorithm):
    """Seed 24 gives 'MÜLLER^JANE': objects keep the sources' ISO_IR 192 and stay valid."""
    import pydicom

    from tests.helpers import write_study
    from tests.results.conftest import SHAPE

    slices = sorted((pydicom.dcmread(p) for p in write_study(tmp_path / "ct", seed=24, shape=SHAPE)),
                    key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert "Ü" in str(slices[0].PatientName)
    bundle = build_results(slices, one_nodule, algorithm, make_uid_for(slices[0].StudyInstanceUID), clock)
    for index, ds in enumerate(bundle.datasets):
        back = round_trip(ds)
        assert back.SpecificCharacterSet == "ISO_IR 192" and back.PatientName == slices[0].PatientName
        assert dciodvfy(write(ds, tmp_path / f"{index}.dcm")).errors == [], back.Modality
