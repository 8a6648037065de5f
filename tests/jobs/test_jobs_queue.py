"""Claims, leases, heartbeats, retries and expiry on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from dicom_node.db.models import AuditEvent, Job, ResultObject, utcnow
from dicom_node.jobs import queue
from dicom_node.jobs.errors import JobNotFound
from dicom_node.jobs.locks import as_utc
from dicom_node.jobs.states import IllegalTransition, JobState
from tests.jobs.jobfactory import queued_jobs, session_factory


def _job(factory, job_id: int) -> Job:  # type: ignore[no-untyped-def]
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _events(factory, job_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with factory() as session:
        stmt = select(AuditEvent.event).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id)
        return list(session.scalars(stmt))


def test_claim_takes_the_oldest_queued_job_with_a_lease(db_url: str) -> None:
    factory = session_factory(db_url)
    first, second = queued_jobs(factory, 2)
    before = utcnow()
    claimed = queue.claim(factory, "w1", lease_seconds=30)
    assert claimed is not None
    assert (claimed.job_id, claimed.state, claimed.attempts, claimed.worker_id) == (first, JobState.RUNNING, 1, "w1")
    assert claimed.study_key == "2.25.1000"
    job = _job(factory, first)
    assert (job.state, job.lease_owner, job.attempts) == ("running", "w1", 1)
    assert before + timedelta(seconds=29) < as_utc(job.lease_expires_at) <= utcnow() + timedelta(seconds=30)  # type: ignore[operator]
    assert _events(factory, first)[-1] == "JOB_RUNNING"
    assert queue.claim(factory, "w2", 30).job_id == second  # type: ignore[union-attr]
    assert queue.claim(factory, "w3", 30) is None


def test_claim_skips_jobs_not_yet_due(db_url: str) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    with factory.begin() as session:
        session.get(Job, job_id).next_attempt_at = utcnow() + timedelta(seconds=60)  # type: ignore[union-attr]
    assert queue.claim(factory, "w1", 30) is None
    assert queue.claim(factory, "w1", 30, now=utcnow() + timedelta(seconds=61)) is not None


def test_heartbeat_extends_only_the_holders_lease(db_url: str) -> None:
    factory = session_factory(db_url)
    queued_jobs(factory, 1)
    claimed = queue.claim(factory, "w1", 5)
    assert claimed is not None
    later = utcnow() + timedelta(seconds=3)
    assert queue.heartbeat(factory, claimed.job_id, "w1", 5, now=later) is True
    assert as_utc(_job(factory, claimed.job_id).lease_expires_at) == later + timedelta(seconds=5)
    assert queue.heartbeat(factory, claimed.job_id, "intruder", 5) is False
    with pytest.raises(JobNotFound, match="job 999 does not exist"):
        queue.heartbeat(factory, 999, "w1", 5)


def test_complete_runs_finish_in_the_same_transaction(db_url: str) -> None:
    factory = session_factory(db_url)
    queued_jobs(factory, 2)
    claimed = queue.claim(factory, "w1", 30)
    assert claimed is not None

    def finish(session, job):  # type: ignore[no-untyped-def]
        session.add(ResultObject(job_id=job.id, kind="sr", path="results/x.dcm"))

    def broken_finish(session, job):  # type: ignore[no-untyped-def]
        finish(session, job)
        session.flush()
        raise OSError("disk full")

    with pytest.raises(OSError):
        queue.complete(factory, claimed.job_id, "w1", finish=broken_finish)
    job = _job(factory, claimed.job_id)
    assert (job.state, job.lease_owner) == ("running", "w1")
    with factory() as session:
        assert session.scalars(select(ResultObject)).all() == []

    assert queue.complete(factory, claimed.job_id, "w2", finish=finish) is False
    assert queue.complete(factory, claimed.job_id, "w1", finish=finish) is True
    job = _job(factory, claimed.job_id)
    assert (job.state, job.lease_owner, job.lease_expires_at) == ("results_built", None, None)
    with factory() as session:
        assert [r.job_id for r in session.scalars(select(ResultObject))] == [claimed.job_id]
    assert _events(factory, claimed.job_id)[-1] == "JOB_RESULTS_BUILT"


def test_retryable_failure_backs_off_then_fails_after_max_attempts(db_url: str) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    backoff = queue.Backoff(base_seconds=10, max_seconds=100, jitter=0.25)
    now = utcnow()
    for attempt in (1, 2):
        claimed = queue.claim(factory, "w1", 30, now=now)
        assert claimed is not None and claimed.attempts == attempt
        state = queue.fail(factory, job_id, "w1", "PACS unreachable", True, 3, backoff, now=now, rng=random.Random(1))
        assert state is JobState.QUEUED
        job = _job(factory, job_id)
        delay = (as_utc(job.next_attempt_at) - now).total_seconds()  # type: ignore[operator]
        nominal = 10 * 2 ** (attempt - 1)
        assert nominal * 0.75 <= delay <= nominal * 1.25
        assert (job.reason, job.lease_owner) == ("PACS unreachable", None)
        assert queue.claim(factory, "w1", 30, now=now) is None  # not due yet
        now += timedelta(seconds=delay + 0.001)
    assert queue.claim(factory, "w1", 30, now=now) is not None
    assert queue.fail(factory, job_id, "w1", "PACS unreachable", True, 3, backoff, now=now) is JobState.FAILED
    assert _job(factory, job_id).attempts == 3
    assert _events(factory, job_id)[-7:] == [
        "JOB_QUEUED",
        "JOB_RUNNING",
        "JOB_RETRY_SCHEDULED",
        "JOB_RUNNING",
        "JOB_RETRY_SCHEDULED",
        "JOB_RUNNING",
        "JOB_FAILED",
    ]


def test_permanent_failure_fails_at_once_and_operator_can_retry(db_url: str) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    queue.claim(factory, "w1", 30)
    assert queue.fail(factory, job_id, "w1", "corrupt pixel data", False, 3) is JobState.FAILED
    assert _job(factory, job_id).reason == "corrupt pixel data"

    queue.retry_failed(factory, job_id, actor="admin")
    job = _job(factory, job_id)
    assert (job.state, job.attempts, job.reason) == ("queued", 0, None)
    with factory() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id.desc())
        ).first()
    assert (event.event, event.actor, event.detail["previous_reason"]) == ("JOB_QUEUED", "admin", "corrupt pixel data")  # type: ignore[union-attr]
    with pytest.raises(IllegalTransition, match="queued → queued"):
        queue.retry_failed(factory, job_id)


def test_expired_lease_is_put_back_and_the_old_holder_is_locked_out(db_url: str) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    queue.claim(factory, "dead-worker", 1)
    assert queue.requeue_expired(factory) == 0  # not expired yet
    later = utcnow() + timedelta(seconds=2)
    assert queue.requeue_expired(factory, now=later) == 1
    job = _job(factory, job_id)
    assert (job.state, job.lease_owner) == ("queued", None)
    with factory() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id.desc())
        ).first()
    assert (event.event, event.detail["state"], event.detail["lost_worker"]) == (
        "JOB_LEASE_EXPIRED",
        "queued",
        "dead-worker",
    )  # type: ignore[union-attr]

    again = queue.claim(factory, "w2", 30, now=later)
    assert again is not None and again.attempts == 2
    assert queue.heartbeat(factory, job_id, "dead-worker", 30) is False
    assert queue.complete(factory, job_id, "dead-worker") is False
    assert queue.complete(factory, job_id, "w2") is True


def test_lease_expiring_on_the_last_attempt_fails_the_job(db_url: str) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1)
    now = utcnow()
    for _ in range(2):
        queue.claim(factory, "crashy", 1, now=now)
        now += timedelta(seconds=2)
        assert queue.requeue_expired(factory, now=now, max_attempts=2) == 1
    job = _job(factory, job_id)
    assert (job.state, job.attempts) == ("failed", 2)
    assert "lease expired on attempt 2 of 2" in (job.reason or "")


def test_claim_in_another_state_keeps_it_and_leases(db_url: str) -> None:
    factory = session_factory(db_url)
    [job_id] = queued_jobs(factory, 1, state=JobState.COMPLETE)
    assert queue.claim(factory, "w1", 30) is None  # only QUEUED by default
    claimed = queue.claim(factory, "deid-1", 30, states=(JobState.COMPLETE,))
    assert claimed is not None and claimed.state is JobState.COMPLETE
    assert queue.claim(factory, "deid-2", 30, states=(JobState.COMPLETE,)) is None  # leased
    assert _events(factory, job_id)[-1] == "JOB_CLAIMED"
    assert queue.complete(factory, job_id, "deid-1", JobState.DEIDENTIFIED) is True
    assert _job(factory, job_id).state == "deidentified"
