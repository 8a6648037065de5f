"""SEG: round-trip, dciodvfy, segments and pixels equal the findings."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest

from dicom_node.results.errors import FindingsError
from dicom_node.results.seg import build_seg, segment_label
from tests.results.conftest import clock
from tests.results.validate import dciodvfy, write


@pytest.mark.parametrize("case", ["two_nodules", "one_nodule"])
def test_seg_is_valid_and_matches_findings(case, request, study, algorithm, uid_for, tmp_path):
    findings = request.getfixturevalue(case)
    seg = build_seg(study, findings, algorithm, uid_for, clock)
    path = write(seg, tmp_path / "seg.dcm")
    report = dciodvfy(path)
    assert report.errors == [], report.errors
    back = hd.seg.segread(path)
    assert back.number_of_segments == len(findings.nodules)
    assert [d.segment_label for d in back.SegmentSequence] == [segment_label(n) for n in findings.nodules]
    assert back.SeriesNumber == 901 and back.Modality == "SEG"
    assert back.PatientID == study[0].PatientID and back.StudyInstanceUID == study[0].StudyInstanceUID
    source_uids = [ds.SOPInstanceUID for ds in study]
    for number, nodule in enumerate(findings.nodules, start=1):
        pixels = back.get_pixels_by_source_instance(source_uids, segment_numbers=[number])[..., 0]
        np.testing.assert_array_equal(pixels.astype(bool), findings.label_mask == nodule.label)
    assert str(back.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue) == "27925004"
    assert back.ContentDate == "20261125" and back.ContentTime == "143005"


def test_seg_frames_reference_their_source_slices(study, two_nodules, algorithm, uid_for):
    seg = build_seg(study, two_nodules, algorithm, uid_for, clock)
    by_uid = {ds.SOPInstanceUID: float(ds.ImagePositionPatient[2]) for ds in study}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        z = float(frame.PlanePositionSequence[0].ImagePositionPatient[2])
        assert by_uid[source] == pytest.approx(z)
    assert seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_no_nodules_gives_no_seg(study, no_nodules, algorithm, uid_for):
    assert build_seg(study, no_nodules, algorithm, uid_for, clock) is None


def test_mask_in_another_grid_is_refused(study, two_nodules, algorithm, uid_for):
    from dataclasses import replace

    wrong = replace(two_nodules, label_mask=two_nodules.label_mask[:-1])
    with pytest.raises(FindingsError, match="label_mask shape"):
        build_seg(study, wrong, algorithm, uid_for, clock)


def test_dciodvfy_check_is_not_vacuous(study, two_nodules, algorithm, uid_for, tmp_path):
    """The validator used above does flag a broken SEG (Segment Sequence removed)."""
    seg = build_seg(study, two_nodules, algorithm, uid_for, clock)
    del seg.SegmentSequence
    assert dciodvfy(write(seg, tmp_path / "broken.dcm")).errors


def test_one_segment_frames_carry_identification_in_shared_groups(study, one_nodule, algorithm, uid_for):
    """The highdicom 0.28 layout the SR workaround exists for: a single segment is 'shared'."""
    seg = build_seg(study, one_nodule, algorithm, uid_for, clock)
    shared = seg.SharedFunctionalGroupsSequence[0]
    assert shared.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1
    with pytest.raises(AttributeError):
        hd.sr.ReferencedSegment.from_segmentation(seg, segment_number=1)
