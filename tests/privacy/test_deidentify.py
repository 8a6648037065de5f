"""De-identification of PHI-laden CT instances: nothing identifying survives in the written bytes,
references stay consistent, the options keep what they promise, the IOD stays valid."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage

from dicom_node.privacy.deidentify import TYPE2_PRESENT, burned_in_risk, deidentify
from dicom_node.privacy.errors import DeidentificationError
from dicom_node.privacy.pseudonym import Pseudonymizer
from tests.privacy.phi import (
    OTHER_KEY,
    PHI_ALWAYS,
    PHI_CHARACTERISTICS,
    PHI_TIMES,
    SITE_KEY,
    copy_ds,
    dciodvfy_errors,
    encodings_of,
    instance_uids,
)


def _encoded(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _leaks(blob: bytes, strings: list[str], charset: str) -> list[str]:
    return [s for s in strings if any(enc in blob for enc in encodings_of(s, charset))]


@pytest.mark.parametrize("retain", [True, False], ids=["with-options", "basic-only"])
@pytest.mark.parametrize("study", ["phi_study", "phi_study_latin1"])
def test_no_phi_survives_in_the_written_bytes(request, make_ctx, study: str, retain: bool) -> None:
    phi = request.getfixturevalue(study)
    originals = phi.datasets()
    ctx = make_ctx(retain_dates_shifted=retain, retain_patient_characteristics=retain)
    blobs = [_encoded(deidentify(ds, ctx)) for ds in originals]
    forbidden = PHI_ALWAYS + ([] if retain else PHI_CHARACTERISTICS + PHI_TIMES)
    # The PHI is really in the input files, in their character set: the search can find it.
    raw = b"".join(p.read_bytes() for p in phi.paths)
    assert _leaks(raw, forbidden, phi.charset) == forbidden
    for blob in blobs:
        assert _leaks(blob, forbidden, phi.charset) == []
        assert [uid for uid in instance_uids(originals) if uid.encode() in blob] == []


def test_input_dataset_is_not_modified(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    before = copy_ds(ds)
    deidentify(ds, make_ctx())
    assert ds == before
    assert ds.file_meta == before.file_meta


def test_private_overlay_curve_icon_and_phi_sequences_are_removed(phi_study, make_ctx) -> None:
    out = deidentify(phi_study.datasets()[0], make_ctx())
    tags = [elem.tag for elem in out.iterall()]
    assert not [t for t in tags if t.is_private]
    assert not [t for t in tags if t.group & 0xFF00 in (0x5000, 0x6000)]
    for keyword in ("IconImageSequence", "OtherPatientIDsSequence", "RequestAttributesSequence",
                    "ReferencedPatientSequence", "InstitutionName", "OperatorsName", "IssuerOfPatientID",
                    "StudyDescription", "SeriesDescription", "PatientBirthTime", "OtherPatientNames"):
        assert keyword not in out, keyword
    # Content Sequence is D: kept, its Person Name replaced by a dummy; codes untouched.
    item = out.ContentSequence[0]
    assert str(item.PersonName) == "ANONYMIZED"
    assert item.ConceptNameCodeSequence[0].CodeValue == "121008"


def test_references_stay_consistent_across_the_study(phi_study, make_ctx) -> None:
    originals = phi_study.datasets()
    ctx = make_ctx()
    outs = [deidentify(ds, ctx) for ds in originals]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PatientID", "AccessionNumber"):
        assert len({str(o.get(keyword)) for o in outs}) == 1, keyword
    sop_uids = [o.SOPInstanceUID for o in outs]
    assert len(set(sop_uids)) == len(outs)
    for k, out in enumerate(outs):
        ref = out.ReferencedImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == sop_uids[(k + 1) % len(outs)]
        assert ref.ReferencedSOPClassUID == CTImageStorage  # class UIDs are kept
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert out.SOPClassUID == CTImageStorage
        assert out.StudyInstanceUID != originals[k].StudyInstanceUID
    # Every replaced UID is in the re-identification map, pointing back to the original.
    reid = ctx.reid_map()
    assert reid.study_uid == outs[0].StudyInstanceUID
    assert reid.uid_map[outs[0].FrameOfReferenceUID] == originals[0].FrameOfReferenceUID
    assert {reid.uid_map[u] for u in sop_uids} == {ds.SOPInstanceUID for ds in originals}
    assert reid.attributes["PatientName"] == "MÜLLER^JÖRG^ÉMILE"
    assert reid.attributes["AccessionNumber"] == "ACC-PHI-5531"


def test_same_key_same_pseudonyms_other_key_different(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    a, b, c = (deidentify(ds, make_ctx(key)) for key in (SITE_KEY, SITE_KEY, OTHER_KEY))
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "PatientID", "PatientName", "AccessionNumber", "StudyID"):
        assert a.get(keyword) == b.get(keyword), keyword
        assert a.get(keyword) != c.get(keyword), keyword
    assert a.StudyDate == b.StudyDate


def test_type2_attributes_stay_present_and_method_is_recorded(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    del ds.ReferringPhysicianName  # absent in the input: still present (empty) in the output
    out = deidentify(ds, make_ctx())
    for keyword in TYPE2_PRESENT:
        assert keyword in out, keyword
    assert out.ReferringPhysicianName == ""
    assert out.PatientBirthDate == ""
    assert str(out.PatientName) == f"ANON^{out.PatientID}"
    assert out.PatientID == Pseudonymizer(SITE_KEY).patient_id("PHI-ID-90210")
    assert len(out.AccessionNumber) == 16 and len(out.StudyID) <= 16
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in out.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113107", "DCM"), ("113108", "DCM")]
    basic = deidentify(ds, make_ctx(retain_dates_shifted=False, retain_patient_characteristics=False))
    assert [c.CodeValue for c in basic.DeidentificationMethodCodeSequence] == ["113100"]
    assert basic.LongitudinalTemporalInformationModified == "REMOVED"


def test_retain_patient_characteristics_keeps_sex_age_weight(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    kept = deidentify(ds, make_ctx(retain_patient_characteristics=True))
    assert (kept.PatientSex, kept.PatientAge, str(kept.PatientWeight)) == ("M", "067Y", "81.5")
    basic = deidentify(ds, make_ctx(retain_patient_characteristics=False))
    assert basic.PatientSex == ""  # Z: Type 2, present and empty
    assert "PatientAge" not in basic and "PatientWeight" not in basic


def _da(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def test_modified_dates_shift_per_patient_and_keep_intervals(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    ctx = make_ctx(retain_dates_shifted=True)
    out = deidentify(ds, ctx)
    shift = Pseudonymizer(SITE_KEY).date_shift_days("PHI-ID-90210")
    assert -365 <= shift <= -1 and ctx.reid_map().date_shift_days == shift
    assert _da(out.StudyDate) == _da("20240315") + timedelta(days=shift)
    assert _da(out.SeriesDate) - _da(out.StudyDate) == timedelta(days=2)  # the interval survives
    assert out.ContentDate == out.StudyDate
    assert out.AcquisitionDateTime == out.SeriesDate + "101500.250000"  # DT: date moved, time kept
    assert out.StudyTime == "101500"  # TM kept
    other = copy_ds(ds)
    other.PatientID = "ANOTHER-PATIENT-1"
    other.StudyInstanceUID = "1.2.3.4.99"
    shifted_other = deidentify(other, ctx)
    assert shifted_other.StudyDate != out.StudyDate  # another patient, another offset


def test_without_the_dates_option_dates_follow_the_table(phi_study, make_ctx) -> None:
    out = deidentify(phi_study.datasets()[0], make_ctx(retain_dates_shifted=False))
    assert out.StudyDate == "" and out.StudyTime == ""  # Z
    assert "SeriesDate" not in out and "AcquisitionDate" not in out  # X/D, X/Z → X (Type 3)
    assert out.ContentDate == "19000101"  # Z/D → D: Type 1 in SR and Enhanced CT
    assert out.AcquisitionDateTime == "19000101000000"  # X/Z/D → D: Type 1C in Enhanced CT


def test_missing_study_uid_is_refused(phi_study, make_ctx) -> None:
    ds = phi_study.datasets()[0]
    del ds.StudyInstanceUID
    with pytest.raises(DeidentificationError, match="StudyInstanceUID"):
        deidentify(ds, make_ctx())


def test_dciodvfy_reports_no_new_errors(phi_study, make_ctx, tmp_path: Path) -> None:
    original = phi_study.paths[0]
    out_path = tmp_path / "deid.dcm"
    deidentify(pydicom.dcmread(original), make_ctx()).save_as(out_path, enforce_file_format=True)
    basic_path = tmp_path / "basic.dcm"
    basic = deidentify(pydicom.dcmread(original), make_ctx(retain_dates_shifted=False, retain_patient_characteristics=False))
    basic.save_as(basic_path, enforce_file_format=True)
    before = dciodvfy_errors(original)
    assert dciodvfy_errors(out_path) - before == set()
    assert dciodvfy_errors(basic_path) - before == set()


def _ct(**attrs: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def test_burned_in_risk() -> None:
    assert burned_in_risk(_ct(), allow_secondary_capture=False) is None
    assert "BurnedInAnnotation" in burned_in_risk(_ct(BurnedInAnnotation="YES"), allow_secondary_capture=True)
    sc = _ct(SOPClassUID=SecondaryCaptureImageStorage, BurnedInAnnotation="NO")
    assert "Secondary Capture" in burned_in_risk(sc, allow_secondary_capture=False)
    assert burned_in_risk(sc, allow_secondary_capture=True) is None
    screen = _ct(ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"])
    assert "SCREEN SAVE" in burned_in_risk(screen, allow_secondary_capture=False)
    assert burned_in_risk(screen, allow_secondary_capture=True) is None


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.5"], ids=["implicit-vr", "rle"])
def test_other_transfer_syntaxes_survive(phi_study, make_ctx, tmp_path: Path, syntax: str) -> None:
    from pydicom.uid import ImplicitVRLittleEndian, RLELossless

    ds = phi_study.datasets()[0]
    pixels = ds.pixel_array.copy()
    if syntax == RLELossless:
        ds.compress(RLELossless)
    else:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = tmp_path / "in.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = deidentify(pydicom.dcmread(path), make_ctx())
    out.save_as(tmp_path / "out.dcm", enforce_file_format=True)
    back = pydicom.dcmread(tmp_path / "out.dcm")
    assert back.file_meta.TransferSyntaxUID == syntax
    assert (back.pixel_array == pixels).all()
    assert str(back.PatientName).startswith("ANON^PN")
