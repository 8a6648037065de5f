"""De-identified copies on disk: the worker's study copy and the researcher's ``deidentify`` command."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dicom_node.privacy.errors import BurnedInRiskError, NotDicomError
from dicom_node.privacy.study import deidentify_files, deidentify_study, read_dicom
from tests.privacy.phi import PHI_ALWAYS, encodings_of, instance_uids


def _burned_in_copy(source: Path, target: Path) -> Path:
    ds = pydicom.dcmread(source)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(target, enforce_file_format=True)
    return target


def test_deidentify_study_writes_renamed_phi_free_copies(phi_study, make_ctx, tmp_path: Path) -> None:
    ctx = make_ctx()
    written = deidentify_study(phi_study.paths, tmp_path / "deid", ctx)
    assert len(written) == len(phi_study.paths)
    originals = phi_study.datasets()
    for path in written:
        ds = pydicom.dcmread(path)
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        blob = path.read_bytes()
        assert [s for s in PHI_ALWAYS if any(e in blob for e in encodings_of(s, phi_study.charset))] == []
        assert [u for u in instance_uids(originals) if u.encode() in blob] == []
    assert not list((tmp_path / "deid").glob(".*"))  # no partial files left behind
    assert ctx.reid_map().uid_map[pydicom.dcmread(written[0]).SOPInstanceUID] in {d.SOPInstanceUID for d in originals}


def test_deidentify_study_refuses_burned_in_before_writing_anything(phi_study, make_ctx, tmp_path: Path) -> None:
    burned = _burned_in_copy(phi_study.paths[1], tmp_path / "burned.dcm")
    out_dir = tmp_path / "deid"
    with pytest.raises(BurnedInRiskError, match="burned.dcm: BurnedInAnnotation"):
        deidentify_study([phi_study.paths[0], burned], out_dir, make_ctx())
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_read_dicom_names_the_file_that_is_not_dicom(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("patient list")
    with pytest.raises(NotDicomError, match=r"notes\.txt: not a DICOM file"):
        read_dicom(text)


def test_deidentify_files_walks_directories_and_reports_what_it_skipped(
    phi_study, settings_factory, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    nested = inbox / "a" / "b"
    nested.mkdir(parents=True)
    for path in phi_study.paths[:2]:
        (nested / path.name).write_bytes(path.read_bytes())
    (inbox / "README.txt").write_text("not an image")
    _burned_in_copy(phi_study.paths[2], inbox / "a" / "screen.dcm")
    single = phi_study.paths[3]
    missing = tmp_path / "nowhere"
    out_dir = tmp_path / "out"

    report = deidentify_files([inbox, single, missing], out_dir, settings_factory())

    assert len(report.written) == 3 and report.studies == 1
    assert {s.path.name: s.reason for s in report.skipped} == {
        "README.txt": "not a DICOM file (no DICM prefix after the 128-byte preamble)",
        "nowhere": "no such file or directory",
    }
    assert [(s.path.name, s.reason) for s in report.withheld] == [("screen.dcm", "BurnedInAnnotation (0028,0301) is YES")]
    assert not report.ok
    messages = "\n".join(report.messages())
    assert "skipped " + str(inbox / "README.txt") + ": not a DICOM file" in messages
    assert "withheld " + str(inbox / "a" / "screen.dcm") in messages
    assert "de-identified 3 file(s) of 1 study(ies); 2 skipped, 1 withheld" in messages
    for path in report.written:
        ds = pydicom.dcmread(path)
        assert path.relative_to(out_dir).parts == (ds.StudyInstanceUID, ds.SeriesInstanceUID, f"{ds.SOPInstanceUID}.dcm")
        assert "MÜLLER".encode() not in path.read_bytes()


def test_deidentify_files_skips_its_own_output_inside_the_input(phi_study, settings_factory, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "one.dcm").write_bytes(phi_study.paths[0].read_bytes())
    first = deidentify_files([inbox], inbox / "deid", settings_factory())
    second = deidentify_files([inbox], inbox / "deid", settings_factory())
    assert len(first.written) == len(second.written) == 1
    assert first.written == second.written  # same key, same pseudonymous name: idempotent
    assert first.ok and second.ok
