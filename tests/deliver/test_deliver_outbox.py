"""The outbox against real peers: Orthanc (C-STORE and STOW-RS), a pynetdicom SCP with scripted
statuses, and the MLLP listener; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import DicomDestination, HL7Destination
from dicom_node.db.models import Delivery
from dicom_node.deliver import DeliverySender, deliveries, retry_dead
from dicom_node.jobs.states import JobState
from dicom_node.orthanc_ctl import OrthancServer
from hl7.listener import MLLPListener
from hl7.oru import build_oru
from tests.conftest import free_port
from tests.deliver.factory import audit_events, job_state, make_job
from tests.deliver.peers import StorageSCP
from tests.hl7.oru_samples import NOW, sample_findings, sample_order

ORU = build_oru(sample_order(), sample_findings(), control_id="PN-DELIV-1", now=NOW, correction=False)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """One Orthanc for the module; it checks the called AE title so a wrong one is refused."""
    server = OrthancServer(
        tmp_path_factory.mktemp("orthanc"), free_port(), free_port(), stable_age=1, route=False,
        overrides={"DicomCheckCalledAet": True},
    )
    with server:
        yield server


@pytest.fixture
def listener() -> Iterator[MLLPListener]:
    with MLLPListener("127.0.0.1", 0, drop_hold_seconds=5.0) as running:
        yield running


def dimse(server: OrthancServer, name: str = "pacs", ae_title: str = "ORTHANC") -> DicomDestination:
    return DicomDestination(name=name, kind="dimse", ae_title=ae_title, host="127.0.0.1", port=server.dicom_port)


def stow(server: OrthancServer, name: str = "pacs-web", root: str = "/dicom-web") -> DicomDestination:
    return DicomDestination(name=name, kind="stow", url=f"{server.url}{root}")


def ehr(listener: MLLPListener) -> HL7Destination:
    return HL7Destination(name="ehr", port=listener.port, ack_timeout_seconds=10.0)


def sender(settings, session_factory, **kw) -> DeliverySender:  # type: ignore[no-untyped-def]
    return DeliverySender(settings, session_factory, timeout_seconds=15.0, **kw)


def rows(session_factory: sessionmaker[Session], job_id: int) -> list[Delivery]:
    with session_factory() as session:
        return deliveries(session, job_id=job_id)


@pytest.mark.parametrize("channel", ["dimse", "stow"])
def test_results_reach_orthanc_and_the_ehr_then_the_job_is_delivered(
    channel, orthanc, listener, session_factory, settings_factory, study_files  # type: ignore[no-untyped-def]
) -> None:
    pacs = dimse(orthanc) if channel == "dimse" else stow(orthanc)
    settings = settings_factory(pacs=[pacs], ehr=[ehr(listener)])
    files = study_files(3)
    job_id = make_job(session_factory, settings, files, oru=ORU)
    assert [(r.channel, r.state) for r in rows(session_factory, job_id)] == [(channel, "pending")] * 3 + [("mllp", "pending")]

    assert sender(settings, session_factory).run_once() == 4

    assert {(r.state, r.attempts) for r in rows(session_factory, job_id)} == {("delivered", 1)}
    for path in files:
        sent = pydicom.dcmread(path)
        instance = orthanc.find_instance(sent.SOPInstanceUID)
        assert instance is not None, f"{path.name} not in Orthanc"
        stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.get_instance_file(instance)))
        assert stored.PixelData == sent.PixelData
    study = orthanc.find_study(pydicom.dcmread(files[0]).StudyInstanceUID)
    assert study is not None and len(orthanc.instances_of_study(study)) == 3
    assert [m.control_id for m in listener.messages] == ["PN-DELIV-1"]
    assert job_state(session_factory, job_id) == JobState.DELIVERED.value
    assert len(audit_events(session_factory, "DELIVERED", job_id)) == 4
    assert [e.detail["outcome"] for e in audit_events(session_factory, "DELIVERY_ATTEMPT", job_id)] == ["delivered"] * 4
    (moved,) = audit_events(session_factory, "JOB_DELIVERED", job_id)
    assert moved.detail["previous"] == "results_built"
    assert sender(settings, session_factory).run_once() == 0  # nothing left


def test_not_eligible_job_is_delivered_once_its_sr_is_stored(orthanc, session_factory, settings_factory, study_files) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(pacs=[dimse(orthanc)])
    job_id = make_job(session_factory, settings, study_files(1), state=JobState.NOT_ELIGIBLE)
    assert sender(settings, session_factory).run_once() == 1
    assert job_state(session_factory, job_id) == JobState.DELIVERED.value


def test_pacs_down_keeps_rows_pending_with_backoff_until_it_starts(
    tmp_path: Path, session_factory, settings_factory, study_files  # type: ignore[no-untyped-def]
) -> None:
    late = OrthancServer(tmp_path / "late-orthanc", free_port(), free_port(), route=False)
    settings = settings_factory(pacs=[dimse(late), stow(late)], delivery_max_backoff_seconds=1.0)
    files = study_files(2)
    job_id = make_job(session_factory, settings, files)
    outbox = sender(settings, session_factory, base_backoff_seconds=1.0)

    assert outbox.run_once() == 4
    waiting = rows(session_factory, job_id)
    assert {(r.state, r.attempts) for r in waiting} == {("pending", 1)}
    assert all(r.last_error.startswith("no association with ORTHANC@") for r in waiting if r.channel == "dimse")
    assert all("ConnectionError" in r.last_error for r in waiting if r.channel == "stow")
    assert outbox.run_once() == 0  # backing off: 0.5-1 s before the next attempt
    assert job_state(session_factory, job_id) == JobState.RESULTS_BUILT.value

    with late:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and job_state(session_factory, job_id) != JobState.DELIVERED.value:
            outbox.run_once() or time.sleep(0.1)
        assert {r.state for r in rows(session_factory, job_id)} == {"delivered"}
        assert all(late.find_instance(pydicom.dcmread(p).SOPInstanceUID) for p in files)
    outcomes = [e.detail["outcome"] for e in audit_events(session_factory, "DELIVERY_ATTEMPT", job_id)]
    assert outcomes[:4] == ["retry"] * 4 and outcomes.count("delivered") == 4
    assert job_state(session_factory, job_id) == JobState.DELIVERED.value


def test_permanent_failures_go_dead_and_are_replayed_by_retry_dead(
    orthanc, listener, session_factory, settings_factory, study_files  # type: ignore[no-untyped-def]
) -> None:
    listener.ack_code = "AR"
    broken = settings_factory(
        pacs=[dimse(orthanc, ae_title="NOT-ORTHANC"), stow(orthanc, root="/wrong-root")], ehr=[ehr(listener)],
    )
    files = study_files(1)
    job_id = make_job(session_factory, broken, files, oru=ORU)

    assert sender(broken, session_factory).run_once() == 3
    with session_factory() as session:
        dead = {r.channel: r.last_error for r in deliveries(session, state="dead")}
    assert set(dead) == {"dimse", "stow", "mllp"}, [(r.channel, r.state, r.last_error) for r in rows(session_factory, job_id)]
    assert "rejected-permanent" in dead["dimse"]
    assert "HTTP 404" in dead["stow"]
    assert "ACK AR" in dead["mllp"]
    assert len(audit_events(session_factory, "DELIVERY_DEAD", job_id)) == 3
    assert sender(broken, session_factory).run_once() == 0  # dead rows are not retried on their own
    assert job_state(session_factory, job_id) == JobState.RESULTS_BUILT.value
    assert orthanc.find_instance(pydicom.dcmread(files[0]).SOPInstanceUID) is None

    listener.ack_code = "AA"
    fixed = settings_factory(data_dir=broken.data_dir, pacs=[dimse(orthanc), stow(orthanc)], ehr=[ehr(listener)])
    assert retry_dead(session_factory) == 3
    assert [e.actor for e in audit_events(session_factory, "DELIVERY_RETRY", job_id)] == ["operator"] * 3
    assert sender(fixed, session_factory).run_once() == 3
    assert {r.state for r in rows(session_factory, job_id)} == {"delivered"}
    assert orthanc.find_instance(pydicom.dcmread(files[0]).SOPInstanceUID) is not None
    assert job_state(session_factory, job_id) == JobState.DELIVERED.value


@pytest.mark.parametrize(
    ("status", "state"),
    [(0xB000, "delivered"), (0xA700, "pending"), (0xA900, "dead"), (0xC001, "dead"), (0x0122, "dead")],
)
def test_dimse_statuses_are_classified(status, state, session_factory, settings_factory, study_files) -> None:  # type: ignore[no-untyped-def]
    scp, port = StorageSCP(ae_title="PACS", status=lambda uid: status), free_port()
    settings = settings_factory(pacs=[DicomDestination(name="pacs", ae_title="PACS", port=port)])
    job_id = make_job(session_factory, settings, study_files(1))
    with scp.serving(port):
        sender(settings, session_factory).run_once()
    (row,) = rows(session_factory, job_id)
    assert row.state == state
    assert len(scp.received) == 1
    if state != "delivered":
        assert f"0x{status:04X}" in row.last_error


def test_resend_after_lost_ack_uses_the_same_control_id(listener, session_factory, settings_factory) -> None:  # type: ignore[no-untyped-def]
    listener.ack_code = "drop"
    impatient = settings_factory(ehr=[HL7Destination(name="ehr", port=listener.port, ack_timeout_seconds=0.3)])
    job_id = make_job(session_factory, impatient, [], oru=ORU)
    sender(impatient, session_factory, base_backoff_seconds=0.2).run_once()
    (row,) = rows(session_factory, job_id)
    assert row.state == "pending" and "no ACK" in row.last_error
    listener.ack_code = "AA"
    patient = settings_factory(data_dir=impatient.data_dir, ehr=[ehr(listener)])
    outbox = sender(patient, session_factory)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rows(session_factory, job_id)[0].state != "delivered":
        outbox.run_once() or time.sleep(0.05)
    assert [(m.control_id, m.reply) for m in listener.messages] == [("PN-DELIV-1", "drop"), ("PN-DELIV-1", "AA")]
    assert listener.messages[0].text == listener.messages[1].text
    assert job_state(session_factory, job_id) == JobState.DELIVERED.value


@pytest.mark.parametrize("db_url", ["postgresql", "sqlite"], indirect=True)
def test_two_senders_send_each_row_once(listener, session_factory, settings_factory, study_files) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL (SELECT … SKIP LOCKED) and SQLite (one conditional UPDATE under its write lock)."""
    scp, port = StorageSCP(ae_title="PACS", delay_s=0.05), free_port()  # slow enough to overlap
    settings = settings_factory(pacs=[DicomDestination(name="pacs", ae_title="PACS", port=port)], ehr=[ehr(listener)])
    files = study_files(8) + study_files(8)
    job_ids = [make_job(session_factory, settings, files[:8], oru=ORU), make_job(session_factory, settings, files[8:])]
    senders = [sender(settings, session_factory, batch_size=3, owner=f"s{i}") for i in range(2)]
    attempted = {s.owner: 0 for s in senders}
    start = threading.Barrier(2)

    def work(outbox: DeliverySender) -> None:
        start.wait()
        while (n := outbox.run_once()) > 0:
            attempted[outbox.owner] += n

    with scp.serving(port):
        threads = [threading.Thread(target=work, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    counts = scp.counts()
    assert set(counts) == {str(pydicom.dcmread(p).SOPInstanceUID) for p in files}
    assert set(counts.values()) == {1}  # each SOP instance sent exactly once
    assert len(listener.messages) == 1
    assert sum(attempted.values()) == 17 and min(attempted.values()) > 0  # both senders worked
    assert len(audit_events(session_factory, "DELIVERED")) == 17
    for job_id in job_ids:
        assert {(r.state, r.attempts) for r in rows(session_factory, job_id)} == {("delivered", 1)}
        assert job_state(session_factory, job_id) == JobState.DELIVERED.value


def test_run_forever_stops_on_its_event(listener, session_factory, settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(ehr=[ehr(listener)])
    job_id = make_job(session_factory, settings, [], oru=ORU)
    stop = threading.Event()
    thread = threading.Thread(target=sender(settings, session_factory, poll_seconds=0.05).run_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and job_state(session_factory, job_id) != JobState.DELIVERED.value:
        time.sleep(0.05)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert job_state(session_factory, job_id) == JobState.DELIVERED.value
