"""The worker loop: outcomes mapped from exceptions, heartbeats during long work, concurrent
workers in threads and in processes (no job runs twice), and a SIGKILLed worker's job re-run."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from dicom_node.db.models import AuditEvent, Job
from dicom_node.jobs import queue
from dicom_node.jobs.errors import PermanentJobError, RetryableJobError
from dicom_node.jobs.worker import Worker
from tests.jobs.jobfactory import queued_jobs, session_factory
from tests.jobs.procs import drain, make_worker

SPAWN = multiprocessing.get_context("spawn")


def _states(factory) -> dict[int, str]:  # type: ignore[no-untyped-def]
    with factory() as session:
        return {j.id: j.state for j in session.scalars(select(Job))}


def _running_events(factory) -> Counter[int]:  # type: ignore[no-untyped-def]
    with factory() as session:
        stmt = select(AuditEvent.job_id).where(AuditEvent.event == "JOB_RUNNING")
        return Counter(session.scalars(stmt))


def _raise(exc: Exception):  # type: ignore[no-untyped-def]
    def process(_claimed):  # type: ignore[no-untyped-def]
        raise exc

    return process


@pytest.mark.parametrize(
    ("process", "state", "reason"),
    [
        (lambda c: None, "results_built", None),
        (_raise(RetryableJobError("PACS busy")), "queued", "RetryableJobError: PACS busy"),
        (
            _raise(PermanentJobError("unsupported transfer syntax")),
            "failed",
            "PermanentJobError: unsupported transfer syntax",
        ),
        (_raise(ValueError("bug")), "queued", "ValueError: bug"),
        (lambda c: ("not", "callable"), "failed", "PermanentJobError: process returned a tuple, not a finish callable"),
    ],
)
def test_run_once_maps_outcomes(db_url: str, settings_factory, process, state, reason) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    worker = Worker(settings_factory(), factory, process, worker_id="w1")
    assert worker.run_once() is True
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.state, job.reason, job.lease_owner) == (state, reason, None)
        if state == "queued":
            assert job.next_attempt_at is not None
    assert worker.run_once() is False  # nothing due: the retry waits for its backoff


def test_heartbeat_keeps_a_long_job_from_being_taken_over(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    settings = settings_factory(lease_seconds=1.0, heartbeat_seconds=0.2)
    taken_over: list[object] = []

    def slow(claimed):  # type: ignore[no-untyped-def]
        time.sleep(2.5)  # well past the 1 s lease: only heartbeats keep it
        taken_over.append(queue.requeue_expired(factory))
        taken_over.append(queue.claim(factory, "other", 1.0))

    assert Worker(settings, factory, slow, worker_id="w1").run_once() is True
    assert taken_over == [0, None]
    assert _states(factory)[job_id] == "results_built"
    with factory() as session:
        assert session.get(Job, job_id).heartbeat_at is not None  # type: ignore[union-attr]


def test_run_forever_drains_the_queue_and_stops(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    jobs = queued_jobs(factory, 3)
    done: list[int] = []
    stop = threading.Event()

    def process(claimed):  # type: ignore[no-untyped-def]
        done.append(claimed.job_id)
        if len(done) == len(jobs):
            stop.set()

    worker = Worker(settings_factory(), factory, process, idle_seconds=0.05)
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert sorted(done) == jobs


def test_two_worker_threads_never_run_a_job_twice(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    jobs = queued_jobs(factory, 20)
    ran: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def run(name: str) -> None:
        def process(claimed) -> None:  # type: ignore[no-untyped-def]
            ran[name].append(claimed.job_id)
            time.sleep(0.01)

        worker = Worker(settings_factory(), factory, process, worker_id=name)
        barrier.wait()
        while worker.run_once():
            pass

    threads = [threading.Thread(target=run, args=(n,)) for n in ran]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not set(ran["a"]) & set(ran["b"])
    assert sorted(ran["a"] + ran["b"]) == jobs
    assert set(_states(factory).values()) == {"results_built"}
    assert all(n == 1 for n in _running_events(factory).values())


def test_two_worker_processes_never_run_a_job_twice(db_url: str, tmp_path: Path) -> None:
    factory = session_factory(db_url)
    jobs = queued_jobs(factory, 20)
    start = SPAWN.Barrier(2)  # both children ready before either claims
    outs = [tmp_path / f"worker-{i}.txt" for i in range(2)]
    procs = [
        SPAWN.Process(target=drain, args=(db_url, f"proc-{i}", str(out), 0.05, 5.0, str(tmp_path / "data"), start))
        for i, out in enumerate(outs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    ran = [[int(x) for x in out.read_text().split()] if out.exists() else [] for out in outs]
    assert not set(ran[0]) & set(ran[1])
    assert sorted(ran[0] + ran[1]) == jobs
    assert ran[0] and ran[1], "both processes should have taken jobs"
    assert set(_states(factory).values()) == {"results_built"}
    assert all(n == 1 for n in _running_events(factory).values())


def test_sigkilled_worker_job_is_rerun_after_its_lease_expires(db_url: str, tmp_path: Path) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    started = tmp_path / "doomed.txt"
    doomed = SPAWN.Process(
        target=drain, args=(db_url, "doomed", str(started), 600.0, 2.0, str(tmp_path / "data"), None)
    )
    doomed.start()
    try:
        _wait_for(lambda: started.exists() and started.read_text().strip() == str(job_id), 30)
        rescuer = make_worker(db_url, "rescuer", str(tmp_path / "rescuer.txt"), 0.0, 2.0, str(tmp_path / "data"))
        time.sleep(2.5)  # past the first lease: the doomed worker's heartbeats must have renewed it
        assert rescuer.run_once() is False
    finally:
        os.kill(doomed.pid, signal.SIGKILL)  # type: ignore[arg-type]
        doomed.join(10)
    assert doomed.exitcode == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while not rescuer.run_once():
        assert time.monotonic() < deadline, "the job was not re-run after the lease expired"
        time.sleep(0.2)
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.state, job.attempts) == ("results_built", 2)
        expired = session.scalars(select(AuditEvent).where(AuditEvent.event == "JOB_LEASE_EXPIRED")).one()
        assert (expired.job_id, expired.detail["lost_worker"]) == (job_id, "doomed")
    assert (tmp_path / "rescuer.txt").read_text().split() == [str(job_id)]


def _wait_for(condition, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
