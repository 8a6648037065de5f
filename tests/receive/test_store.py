"""The main store path with real dcmtk storescu, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
from pydicom import dcmread
from sqlalchemy import select

from dicom_node.db.models import Job, Study, utcnow
from dicom_node.modality import FictitiousPatient
from dicom_node.privacy.pseudonym import Pseudonymizer
from tests.helpers import write_study
from tests.receive.builders import ct_series
from tests.receive.scu import send_datasets, storescu

SUCCESS_LINE = "Received Store Response (Success)"


def dataset_bytes(path: Path) -> bytes:
    """The bytes after the file meta: what went over the wire."""
    raw = path.read_bytes()
    meta = dcmread(path, stop_before_pixels=True).file_meta
    # preamble + "DICM" + the (0002,0000) element itself (12 bytes) + the group it measures
    return raw[132 + 12 + int(meta.FileMetaInformationGroupLength):]


def test_study_is_stored_durably_and_indexed_without_phi(db_url, scp_factory, tmp_path):
    scp = scp_factory(db_url)
    files = write_study(tmp_path / "study", seed=3, shape=(4, 64, 64))
    result = storescu(scp.port, files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(SUCCESS_LINE) + result.stderr.count(SUCCESS_LINE) == 4

    sent = [dcmread(p) for p in files]
    pseudo = Pseudonymizer(scp.settings.site_key)
    instances = scp.instances()
    assert sorted(i.sop_key for i in instances) == sorted(pseudo.uid(ds.SOPInstanceUID) for ds in sent)
    by_key = {pseudo.uid(ds.SOPInstanceUID): path for ds, path in zip(sent, files)}
    for inst in instances:
        stored = scp.path(inst.spool_path)
        assert stored.is_file() and inst.spool_path.startswith("spool/")
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == inst.sha256
        assert dataset_bytes(stored) == dataset_bytes(by_key[inst.sop_key])  # byte-exact
        assert inst.tags["Rows"] == 64 and inst.tags["PixelSpacing"] == [0.8, 0.8]
        assert inst.tags["FrameOfReferenceKey"] == pseudo.uid(sent[0].FrameOfReferenceUID)
        assert inst.study_version == 1 and inst.modality == "CT"
    assert not list((scp.settings.spool_dir / "tmp").iterdir())

    with scp.sessions() as s:
        study = s.scalars(select(Study)).one()
        assert study.study_key == pseudo.uid(sent[0].StudyInstanceUID)
        assert study.patient_key == pseudo.patient_id(sent[0].PatientID)
        assert [j.state for j in s.scalars(select(Job))] == ["received"]
    events = [e.event for e in scp.audit()]
    assert events.count("RECEIVED") == 4 and "JOB_RECEIVED" in events

    phi = [str(sent[0].PatientName), sent[0].PatientID, sent[0].StudyInstanceUID, sent[0].SOPInstanceUID,
           sent[0].PatientBirthDate, sent[0].AccessionNumber]
    stored_text = json.dumps([[i.tags, i.spool_path] for i in instances] + [[e.detail] for e in scp.audit()])
    assert not [value for value in phi if value in stored_text]


def test_identical_resend_adds_no_rows(db_url, scp_factory, tmp_path):
    scp = scp_factory(db_url)
    files = write_study(tmp_path / "study", seed=4, shape=(3, 64, 64))
    assert storescu(scp.port, files).returncode == 0
    assert storescu(scp.port, files).returncode == 0
    assert len(scp.instances()) == 3
    assert [e.event for e in scp.audit()].count("RECEIVED") == 3
    assert len(list(scp.settings.spool_dir.glob("*/*.dcm"))) == 3


def test_late_instance_reopens_completed_study(db_url, scp_factory):
    scp = scp_factory(db_url)
    series = ct_series(seed=5, slices=3)
    assert [r.status for r in send_datasets(scp.port, series[:2])] == [0, 0]
    with scp.sessions.begin() as s:
        s.scalars(select(Study)).one().completed_at = utcnow()
    assert [r.status for r in send_datasets(scp.port, series[2:])] == [0]
    with scp.sessions() as s:
        study = s.scalars(select(Study)).one()
        assert (study.version, study.completed_at) == (2, None)
        jobs = {j.study_version: j.state for j in s.scalars(select(Job))}
    assert jobs == {1: "superseded", 2: "received"}
    assert sorted(i.study_version for i in scp.instances()) == [1, 1, 2]
    assert "STUDY_REOPENED" in [e.event for e in scp.audit()]


def test_conflicting_duplicate_is_quarantined_and_first_kept(db_url, scp_factory):
    scp = scp_factory(db_url)
    first = ct_series(seed=6, slices=1)[0]
    second = copy.deepcopy(first)
    second.PixelData = (np.frombuffer(first.PixelData, np.int16) + 1).astype(np.int16).tobytes()
    assert send_datasets(scp.port, [first])[0].status == 0
    # Our documented choice: 0x0000, the conflicting copy is held in quarantine.
    assert send_datasets(scp.port, [second, second])[0].status == 0
    [kept] = scp.instances()
    assert dcmread(scp.path(kept.spool_path)).PixelData == first.PixelData
    [held] = scp.quarantined()  # the same conflicting bytes twice: held once
    assert held.reason == "duplicate_conflict"
    assert dcmread(scp.path(held.path)).PixelData == second.PixelData
    assert held.path.startswith("quarantine/")
    assert [e.event for e in scp.audit()].count("DUPLICATE_CONFLICT") == 1


def test_study_with_two_patient_ids_is_never_merged(db_url, scp_factory):
    scp = scp_factory(db_url)
    own = ct_series(seed=8, slices=2)
    intruder = copy.deepcopy(ct_series(seed=9, slices=1)[0])
    intruder.StudyInstanceUID = own[0].StudyInstanceUID  # same study UID, another patient
    assert intruder.PatientID != own[0].PatientID
    statuses = [r.status for r in send_datasets(scp.port, [*own, intruder])]
    assert statuses == [0, 0, 0]
    assert len(scp.instances()) == 2
    [held] = scp.quarantined()
    assert held.reason == "patient_conflict"
    assert "PATIENT_CONFLICT" in [e.event for e in scp.audit()]


def test_concurrent_associations_create_one_study(db_url, scp_factory):
    scp = scp_factory(db_url)
    series = ct_series(seed=10, slices=8)
    results: list[int | None] = []
    lock = threading.Lock()

    def send(part):  # type: ignore[no-untyped-def]
        statuses = [r.status for r in send_datasets(scp.port, part)]
        with lock:
            results.extend(statuses)

    threads = [threading.Thread(target=send, args=(series[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [0] * 8
    assert len(scp.instances()) == 8
    with scp.sessions() as s:
        assert len(s.scalars(select(Study)).all()) == 1
        assert len(s.scalars(select(Job)).all()) == 1


def test_patient_with_non_ascii_names_keeps_bytes(db_url, scp_factory, tmp_path):
    """UTF-8 names (the modality's default character set) arrive and are stored byte-exact."""
    scp = scp_factory(db_url)
    patient = FictitiousPatient(name="MÜLLER^ZOË", patient_id="SYNUTF8")
    files = write_study(tmp_path / "utf8", seed=11, shape=(1, 64, 64), patient=patient)
    assert storescu(scp.port, files).returncode == 0
    [inst] = scp.instances()
    assert dataset_bytes(scp.path(inst.spool_path)) == dataset_bytes(files[0])
    assert str(dcmread(scp.path(inst.spool_path)).PatientName) == "MÜLLER^ZOË"
