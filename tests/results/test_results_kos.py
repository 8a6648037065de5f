"""KOS: round-trip, dciodvfy, references point at the nodules' key slices."""

from __future__ import annotations

import pydicom
import pytest

from dicom_node.results.errors import FindingsError
from dicom_node.results.kos import build_kos
from dicom_node.results.seg import build_seg
from dicom_node.results.sr import build_sr
from tests.results.conftest import clock
from tests.results.validate import dciodvfy, write


def _references(kos) -> list[str]:
    return [c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for c in kos.ContentSequence if c.ValueType in ("IMAGE", "COMPOSITE")]


def test_kos_flags_key_slices_and_the_sr(study, two_nodules, algorithm, uid_for, tmp_path):
    seg = build_seg(study, two_nodules, algorithm, uid_for, clock)
    sr = build_sr(study, seg, two_nodules, algorithm, uid_for, clock)
    path = write(build_kos(study, two_nodules, algorithm, uid_for, clock, sr=sr), tmp_path / "kos.dcm")
    assert dciodvfy(path).errors == []
    kos = pydicom.dcmread(path)
    refs = _references(kos)
    assert refs == [study[n.key_slice].SOPInstanceUID for n in two_nodules.nodules] + [sr.SOPInstanceUID]
    assert set(refs[:-1]) <= {ds.SOPInstanceUID for ds in study}
    assert kos.ConceptNameCodeSequence[0].CodeValue == "113000"  # Of Interest
    description = [c.TextValue for c in kos.ContentSequence if c.ValueType == "TEXT"
                   and c.ConceptNameCodeSequence[0].CodeValue == "113012"][0]
    for nodule in two_nodules.nodules:
        image = study[nodule.key_slice].InstanceNumber
        assert f"Nodule {nodule.label} (image {image}): {nodule.description}" in description
    assert "RESEARCH USE ONLY" in description
    assert kos.SeriesNumber == 903 and kos.Modality == "KO"


def test_kos_for_one_nodule_without_sr(study, one_nodule, algorithm, uid_for, tmp_path):
    path = write(build_kos(study, one_nodule, algorithm, uid_for, clock), tmp_path / "kos.dcm")
    assert dciodvfy(path).errors == []
    assert _references(pydicom.dcmread(path)) == [study[one_nodule.nodules[0].key_slice].SOPInstanceUID]


def test_no_nodules_gives_no_kos(study, no_nodules, algorithm, uid_for):
    assert build_kos(study, no_nodules, algorithm, uid_for, clock) is None


def test_key_slice_outside_the_series_is_refused(study, one_nodule, algorithm, uid_for):
    from dataclasses import replace

    bad = replace(one_nodule, nodules=(replace(one_nodule.nodules[0], key_slice=len(study)),))
    with pytest.raises(FindingsError, match="key_slice"):
        build_kos(study, bad, algorithm, uid_for, clock)
