"""storescu → node → Orthanc + EHR, with the real AI, on both databases; and the faults that matter:
PACS down, EHR rejecting, the node killed with deliveries pending, a late instance after delivery."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from sqlalchemy import func, select

from dicom_node.db.models import AuditEvent, Delivery, Job
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.deliver.outbox import retry_dead
from dicom_node.privacy.pseudonym import Pseudonymizer
from tests.conftest import PG_ADMIN_URL
from tests.e2e.conftest import Site, small_study, storescu

pytestmark = pytest.mark.timeout(600)
RESULT_MODALITIES = {"SEG", "SR", "KO", "DOC"}


def delivered(jobs: list[Job]) -> bool:
    return bool(jobs) and all(j.state in {"delivered", "superseded"} for j in jobs) and jobs[-1].state == "delivered"


def results_in_orthanc(site: Site, study_uid: str) -> dict[str, list[pydicom.Dataset]]:
    orthanc_id = site.orthanc.find_study(study_uid)
    assert orthanc_id, "the original study is not in Orthanc"
    return {modality: [pydicom.dcmread(io.BytesIO(site.orthanc.get_instance_file(i))) for i in ids]
            for modality, ids in site.orthanc.modalities_of_study(orthanc_id).items()
            if modality in RESULT_MODALITIES}


def dciodvfy_errors(ds: pydicom.Dataset, tmp: Path) -> list[str]:
    path = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def sr_numbers(sr: pydicom.Dataset) -> dict[str, list[float]]:
    """Every NUM content item's value, by concept name, anywhere in the SR tree."""
    found: dict[str, list[float]] = {}

    def walk(items) -> None:  # type: ignore[no-untyped-def]
        for item in items:
            if item.ValueType == "NUM" and "MeasuredValueSequence" in item:
                name = item.ConceptNameCodeSequence[0].CodeMeaning
                found.setdefault(name, []).append(float(item.MeasuredValueSequence[0].NumericValue))
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def pg_or_sqlite_site(request, site: Site):  # type: ignore[no-untyped-def]
    if request.param == "postgresql":
        import uuid

        import psycopg

        name = "pn_e2e_" + uuid.uuid4().hex[:10]
        admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        site.settings = site.settings.model_copy(update={"database_url": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name})
        yield site
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield site


def test_results_land_in_the_original_study_and_the_ehr(pg_or_sqlite_site: Site, caplog) -> None:
    site = pg_or_sqlite_site
    site.orthanc.start()
    study = small_study(site.tmp / "ct", seed=21)
    caplog.set_level(logging.DEBUG)
    node = site.start_node()
    try:
        storescu(study.files, site.settings.dicom_port)
        jobs = site.wait_job(node.session_factory, delivered)
        with node.session_factory() as s:
            stored_rows = " ".join(f"{e.event} {e.study_key} {e.detail}" for e in s.scalars(select(AuditEvent)))
            stored_rows += " ".join(f"{j.summary} {j.reason}" for j in s.scalars(select(Job)))
    finally:
        node.stop()
    phi = (study.patient.name, study.patient.name.split("^")[0], study.patient.patient_id,
           study.patient.accession_number, study.patient.birth_date, study.uids.study, study.uids.series)
    logged = caplog.text
    assert "JOB_DELIVERED" in stored_rows and logged  # something was recorded and logged
    for value in phi:  # PHI never reaches the logs, the audit trail or the job rows
        assert value not in logged and value not in stored_rows, value
    summary = jobs[-1].summary
    table = summary["nodule_table"]
    assert summary["nodules"] == len(table) >= 1
    assert any(abs(row["mean_diameter_mm"] - 12.0) <= 2.5 for row in table), table

    results = results_in_orthanc(site, study.uids.study)
    assert set(results) == RESULT_MODALITIES, results.keys()
    pseudo = Pseudonymizer(site.settings.site_key)
    source_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in study.files}
    for modality, datasets in results.items():
        for ds in datasets:
            assert ds.PatientID == study.patient.patient_id and str(ds.PatientName) == study.patient.name
            assert ds.StudyInstanceUID == study.uids.study
            assert ds.AccessionNumber == study.patient.accession_number
            assert dciodvfy_errors(ds, site.tmp) == [], modality
            blob = ds.to_json()
            for pseudonym in (pseudo.uid(study.uids.study), pseudo.uid(study.uids.series),
                              pseudo.patient_id(study.patient.patient_id)):
                assert pseudonym not in blob, f"{modality} leaks a pseudonym"
    seg = hd.seg.Segmentation.from_dataset(results["SEG"][0])
    assert len(seg.SegmentSequence) == len(table)
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= source_uids  # every reference resolves into the original study
    measured = sr_numbers(results["SR"][0])
    volumes = sorted(v for name, vs in measured.items() if "olume" in name for v in vs)
    assert volumes == pytest.approx(sorted(r["volume_mm3"] for r in table), abs=0.1)
    diameters = sorted(v for name, vs in measured.items() if name == "Diameter" for v in vs)
    assert diameters == pytest.approx(sorted(r["mean_diameter_mm"] for r in table), abs=0.05), measured.keys()

    assert len(site.ehr.messages) >= 1
    oru = site.ehr.messages[-1]
    message = parse_message(oru.text, validation_level=VALIDATION_LEVEL.STRICT)
    message.validate()
    assert oru.result_status == "F"
    assert f"|{study.patient.patient_id}" in oru.text.split("\rPID|", 1)[1].split("\r", 1)[0]
    for row in table:
        assert f"{row['mean_diameter_mm']:.1f}" in oru.text


def test_pacs_down_and_ehr_rejecting_then_recovered(site: Site) -> None:
    """Orthanc is down when results are ready → delivered after it starts; the EHR answers AR →
    dead letter, visible, replayed by the operator once the EHR accepts again."""
    site.ehr.ack_code = "AR"
    study = small_study(site.tmp / "ct", seed=22)
    node = site.start_node()
    try:
        storescu(study.files, site.settings.dicom_port)
        site.wait_job(node.session_factory, lambda jobs: bool(jobs) and jobs[-1].state == "results_built")
        with node.session_factory() as s:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = list(s.scalars(select(Delivery)))
                if any(d.channel == "mllp" and d.state == "dead" for d in rows) and any(
                        d.channel == "dimse" and d.attempts >= 1 for d in rows):
                    break
                time.sleep(0.3)
                s.expire_all()
        assert [d.state for d in rows if d.channel == "mllp"] == ["dead"]
        assert all(d.state == "pending" for d in rows if d.channel == "dimse")  # retried, not dropped
        site.orthanc.start()
        site.ehr.ack_code = "AA"
        assert retry_dead(node.session_factory) == 1
        site.wait_job(node.session_factory, delivered, timeout_s=120)
    finally:
        node.stop()
    assert set(results_in_orthanc(site, study.uids.study)) == RESULT_MODALITIES
    assert [m.reply for m in site.ehr.messages][-1] == "AA"


def test_late_instance_after_delivery_makes_a_new_version_sent_as_correction(site: Site) -> None:
    site.orthanc.start()
    study = small_study(site.tmp / "ct", seed=23)
    node = site.start_node()
    try:
        storescu(study.files[:-1], site.settings.dicom_port)
        site.wait_job(node.session_factory, delivered)
        storescu(study.files[-1:], site.settings.dicom_port)  # a late slice re-opens the study
        jobs = site.wait_job(node.session_factory, lambda js: len(js) == 2 and delivered(js))
    finally:
        node.stop()
    assert [j.state for j in jobs] == ["superseded", "delivered"] and jobs[-1].study_version == 2
    statuses = [m.result_status for m in site.ehr.messages]
    assert statuses[0] == "F" and statuses[-1] == "C"
    found = results_in_orthanc(site, study.uids.study)
    assert len(found["SR"]) == 2  # both versions' reports are in the PACS, side by side
    for dss in found.values():  # each object kind once per version, in its own series
        assert len({ds.SeriesInstanceUID for ds in dss}) == len(dss) == 2  # two versions × SEG, SR, KOS, PDF series


def test_node_killed_with_deliveries_pending_delivers_once_after_restart(site: Site, tmp_path: Path) -> None:
    """kill -9 while the PACS is down; after restart with the PACS up every object arrives once.

    The EHR is up all along, so the kill may land between its ACK of the ORU and our commit of
    that ACK: delivery is at least once, and a resend must be the very same message (same MSH-10,
    same text) so that the EHR's duplicate check drops it."""
    study = small_study(site.tmp / "ct", seed=24)
    env = {**os.environ, **settings_env(site)}
    cmd = [sys.executable, "-m", "dicom_node.cli", "serve"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = make_engine(site.settings.db_url)
    sessions = make_sessionmaker(engine)
    try:
        wait_port(site.settings.dicom_port)
        storescu(study.files, site.settings.dicom_port)
        site.wait_job(sessions, lambda jobs: bool(jobs) and jobs[-1].state == "results_built")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        site.orthanc.start()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        site.wait_job(sessions, delivered, timeout_s=120)
        with sessions() as s:
            n_dicom = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.channel == "dimse"))
            stored = s.scalars(select(AuditEvent).where(AuditEvent.event == "DELIVERED")).all()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        engine.dispose()
    results = results_in_orthanc(site, study.uids.study)
    assert sum(len(v) for v in results.values()) == n_dicom == 4
    assert len(stored) == n_dicom + 1  # each DICOM object and the ORU acknowledged exactly once
    received = site.ehr.messages
    assert received and len({(m.control_id, m.text) for m in received}) == 1  # one ORU, resent as is if at all
    assert all(m.reply == "AA" for m in received)


def settings_env(site: Site) -> dict[str, str]:
    s = site.settings
    return {
        "PULMONODE_DEMO_MODE": "true", "PULMONODE_DATA_DIR": str(s.data_dir), "PULMONODE_DATABASE_URL": s.db_url,
        "PULMONODE_DICOM_HOST": "127.0.0.1", "PULMONODE_DICOM_PORT": str(s.dicom_port),
        "PULMONODE_HTTP_PORT": str(s.http_port), "PULMONODE_STABLE_SECONDS": "1",
        "PULMONODE_MIN_FREE_DISK_MB": "16", "PULMONODE_DELIVERY_MAX_BACKOFF_SECONDS": "2",
        "PULMONODE_DELIVERY_TIMEOUT_SECONDS": "5", "PULMONODE_DELIVERY_LEASE_SECONDS": "10",
        "PULMONODE_PACS": s.model_dump_json(include={"pacs"})[len('{"pacs":'):-1],
        "PULMONODE_EHR": s.model_dump_json(include={"ehr"})[len('{"ehr":'):-1],
    }


def wait_port(port: int, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listening on {port}")
