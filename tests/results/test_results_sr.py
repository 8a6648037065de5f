"""SR TID 1500: round-trip, dciodvfy, parsed content equals the findings."""

from __future__ import annotations

import highdicom as hd
import pytest

from dicom_node.results import codes
from dicom_node.results.errors import FindingsError
from dicom_node.results.seg import build_seg
from dicom_node.results.sr import build_not_eligible_sr, build_sr
from tests.results.conftest import clock
from tests.results.validate import dciodvfy, write


def _write_sr(study, findings, algorithm, uid_for, tmp_path):
    seg = build_seg(study, findings, algorithm, uid_for, clock)
    path = write(build_sr(study, seg, findings, algorithm, uid_for, clock), tmp_path / "sr.dcm")
    return seg, path


def _measurements(group) -> dict[tuple[str, str | None], tuple[float, str]]:
    return {
        (m.name.meaning, m.derivation.meaning if m.derivation else None): (m.value, m.unit.value)
        for m in group.get_measurements()
    }


def _evaluations(group) -> dict[str, str]:
    return {q.name.value: q.value.value for q in group.get_qualitative_evaluations()}


def _texts(item, code_value: str) -> list[str]:
    return [
        c.TextValue for c in item.ContentSequence
        if c.ValueType == "TEXT" and c.ConceptNameCodeSequence[0].CodeValue == code_value
    ]


@pytest.mark.parametrize("case", ["two_nodules", "one_nodule"])
def test_sr_measurements_equal_findings(case, request, study, algorithm, uid_for, tmp_path):
    findings = request.getfixturevalue(case)
    seg, path = _write_sr(study, findings, algorithm, uid_for, tmp_path)
    assert dciodvfy(path).errors == []
    sr = hd.sr.srread(path)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(findings.nodules)
    for number, (group, nodule) in enumerate(zip(groups, findings.nodules), start=1):
        got = _measurements(group)
        assert got[("Long axis", None)] == (pytest.approx(nodule.long_axis_mm), "mm")
        assert got[("Short axis", None)] == (pytest.approx(nodule.short_axis_mm), "mm")
        assert got[("Diameter", "Mean")] == (pytest.approx(nodule.mean_diameter_mm), "mm")
        assert got[("Volume", None)] == (pytest.approx(nodule.volume_mm3), "mm3")
        assert got[("Attenuation Coefficient", "Mean")] == (pytest.approx(nodule.mean_hu), "[hnsf'U]")
        assert got[("Probability of cancer", None)] == (pytest.approx(nodule.malignancy_probability), "1")
        assert group.tracking_identifier == f"Nodule {nodule.label}"
        assert group.tracking_uid == seg.SegmentSequence[number - 1].TrackingUID
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert ref[0].ReferencedSOPSequence[0].ReferencedSegmentNumber == number
        on_slices = [ds.SOPInstanceUID for z, ds in enumerate(study) if (findings.label_mask[z] == nodule.label).any()]
        assert [item.referenced_sop_instance_uid for item in ref[1:]] == on_slices
        evaluations = _evaluations(group)
        assert evaluations["LUNGRADS"] == f"LR-{nodule.lung_rads.category}"
        assert evaluations["MALCLASS"] == ("21594007" if nodule.malignant else "30807003")
        assert evaluations["NODTYPE"] == codes.NODULE_TYPE_VALUES[nodule.nodule_type].value
        assert _texts(group[0], "121075") == [nodule.lung_rads.management]


def test_sr_two_nodule_specifics(study, two_nodules, algorithm, uid_for, tmp_path):
    _, path = _write_sr(study, two_nodules, algorithm, uid_for, tmp_path)
    sr = hd.sr.srread(path)
    second = sr.content.get_volumetric_roi_measurement_groups()[1]
    evaluations = _evaluations(second)
    assert evaluations["111388"] == "1187332001"  # Malignancy Type: Adenocarcinoma
    assert evaluations["112030"] == "237897009"  # Calcified
    assert evaluations["LUNGRADS-S"] == "373066001"  # S modifier: Yes
    assert _measurements(second)[("Solid component mean diameter", None)] == (pytest.approx(2.2), "mm")
    assert second.finding_sites[0].laterality.value == "7771000"  # Left


def test_sr_document_level_items(study, two_nodules, algorithm, uid_for, tmp_path):
    _, path = _write_sr(study, two_nodules, algorithm, uid_for, tmp_path)
    sr = hd.sr.srread(path)
    exam = sr.content.get_image_measurement_groups()[0]
    assert exam.tracking_identifier == "Exam"
    assert _evaluations(exam)["LUNGRADS"] == "LR-4B"
    assert _texts(exam[0], "121075") == [two_nodules.exam_lung_rads.management]
    statements = [c for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "C0034375"]
    assert _texts(statements[0], "RUO") == [two_nodules.disclaimer] and "synthetic" in two_nodules.disclaimer
    device = sr.content.get_observer_contexts()[0].observer_identifying_attributes
    assert device.uid == algorithm.device_uid and device.manufacturer_name == "pulmonode"
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99PULMONODE"
    assert sr.SeriesNumber == 902 and sr.ContentDate == "20261125"
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert {ds.SOPInstanceUID for ds in study} < evidence


def test_sr_without_nodules_still_reports_the_exam(study, no_nodules, algorithm, uid_for, tmp_path):
    _, path = _write_sr(study, no_nodules, algorithm, uid_for, tmp_path)
    assert dciodvfy(path).errors == []
    sr = hd.sr.srread(path)
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    assert _evaluations(sr.content.get_image_measurement_groups()[0])["LUNGRADS"] == "LR-1"


def test_sr_refuses_nodules_without_seg(study, two_nodules, algorithm, uid_for):
    with pytest.raises(FindingsError, match="no SEG"):
        build_sr(study, None, two_nodules, algorithm, uid_for, clock)


def test_not_eligible_sr(study, uid_for, tmp_path):
    reason = "series has 12 slices; at least 40 are needed"
    path = write(build_not_eligible_sr(study, reason, uid_for, clock), tmp_path / "ne.dcm")
    assert dciodvfy(path).errors == []
    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34" and sr.SeriesNumber == 902
    assert "NOT analysed" in sr.SeriesDescription
    assert sr.SOPInstanceUID == uid_for("sr-not-eligible-instance")
    assert reason in [c.TextValue for c in sr.ContentSequence if c.ValueType == "TEXT"]
    assert sr.StudyInstanceUID == study[0].StudyInstanceUID and sr.PatientID == study[0].PatientID
    with pytest.raises(FindingsError):
        build_not_eligible_sr(study, "  ", uid_for, clock)
