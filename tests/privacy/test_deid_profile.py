"""PS3.15 Table E.1-1 as data: complete, well-formed, and resolved the way E.1.1 says."""

from __future__ import annotations

from pydicom.datadict import keyword_for_tag

from dicom_node.privacy import profile

ACTIONS = {"D", "Z", "X", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


def test_table_is_the_full_standard_table_with_unique_well_formed_rows() -> None:
    table = profile.TABLE_E1_1
    assert len(table) >= 600
    assert len({row.tag for row in table}) == len(table)
    assert [row.tag for row in table] == sorted(row.tag for row in table)
    for row in table:
        assert row.basic in ACTIONS, row
        assert row.keyword == keyword_for_tag(row.tag), row
        assert row.modified_dates in ("", "C"), row
        assert row.patient_characteristics in ("", "K", "C"), row


def test_rows_match_the_standard_for_well_known_attributes() -> None:
    expected = {
        "PatientName": "Z", "PatientID": "Z/D", "PatientBirthDate": "Z", "AccessionNumber": "Z",
        "SOPInstanceUID": "U", "StudyInstanceUID": "U", "FrameOfReferenceUID": "U",
        "InstitutionName": "X/Z/D", "ReferencedImageSequence": "X/Z/U*", "SourceImageSequence": "X/Z/U*",
        "ContentDate": "Z/D", "SeriesDate": "X/D", "AcquisitionDate": "X/Z", "OtherPatientIDsSequence": "X",
        "RequestAttributesSequence": "X", "IconImageSequence": "X", "ContentSequence": "D", "PersonName": "D",
        "PatientAge": "X", "StudyDescription": "X", "ReferringPhysicianName": "Z",
    }
    by_keyword = {row.keyword: row.basic for row in profile.TABLE_E1_1}
    assert {k: by_keyword[k] for k in expected} == expected


def test_modified_dates_option_covers_dates_but_not_birth_date() -> None:
    rows = {row.keyword: row for row in profile.TABLE_E1_1}
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDateTime", "ContentTime", "InstanceCreationDate"):
        assert rows[keyword].modified_dates == "C", keyword
    assert rows["PatientBirthDate"].modified_dates == ""
    assert rows["PatientName"].modified_dates == ""


def test_compound_actions_resolve_by_iod_type() -> None:
    def resolved(tag: int) -> str:
        return profile.action(tag, retain_modified_dates=False, retain_patient_characteristics=False)

    assert resolved(0x00080080) == "X"  # Institution Name X/Z/D, Type 3 everywhere: remove
    assert resolved(0x00080022) == "X"  # Acquisition Date X/Z, Type 3
    assert resolved(0x00080023) == "D"  # Content Date Z/D, Type 1 in SR and Enhanced CT
    assert resolved(0x00181000) == "D"  # Device Serial Number X/Z/D, Type 1 in Enhanced General Equipment
    assert resolved(0x00180010) == "Z"  # Contrast/Bolus Agent Z/D, Type 2
    assert resolved(0x00081140) == "U*"  # Referenced Image Sequence: keep the references, replace UIDs
    assert resolved(0x00100010) == "Z"
    assert resolved(0x00291010) == ""  # not listed (private tags are handled as a group)


def test_options_change_the_action() -> None:
    assert profile.action(0x00080020, True, False) == "C"  # Study Date shifted
    assert profile.action(0x00080020, False, False) == "Z"
    assert profile.action(0x00101010, False, True) == "K"  # Patient's Age kept
    assert profile.action(0x00101010, False, False) == "X"
    assert profile.action(0x00102110, False, True) == "X"  # Allergies: C (clean) not implemented → basic
    assert profile.action(0x00100030, True, True) == "Z"  # Birth Date in no option
