"""The job queue: workers claim jobs with a lease, renew it by heartbeat, and give it back.

A claim is one transaction: pick the oldest due job (PostgreSQL: ``FOR UPDATE SKIP LOCKED``;
SQLite: under ``BEGIN IMMEDIATE``, see ``jobs.locks``), take the lease, move QUEUED → RUNNING and
audit it. Every later call checks that the caller still holds the lease, under the row lock, so a
worker whose lease expired and was taken over cannot complete or fail the job.

A job claimed in another state (``states=(JobState.COMPLETE,)``, e.g. for a de-identification
step) keeps its state; the lease alone marks it taken (audited JOB_CLAIMED).

Times are UTC; ``now`` is injectable everywhere for tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node import audit
from dicom_node.db.models import Job, utcnow
from dicom_node.jobs.errors import JobNotFound
from dicom_node.jobs.lifecycle import transition
from dicom_node.jobs.locks import as_utc, begin_write
from dicom_node.jobs.states import JobState

SessionFactory = sessionmaker[Session]
Finish = Callable[[Session, Job], None]
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to know about the job it holds (pseudonymous identifiers only)."""

    job_id: int
    study_id: int
    study_key: str
    study_version: int
    state: JobState  # after the claim: RUNNING for a job claimed from QUEUED
    kind: str
    series_key: str | None
    attempts: int  # this attempt's number, 1 for the first
    worker_id: str
    lease_expires_at: datetime


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: base × 2^(attempt-1), capped, then ± ``jitter`` of it."""

    base_seconds: float = 5.0
    max_seconds: float = 300.0
    jitter: float = 0.25

    def delay_seconds(self, attempt: int, rng: random.Random | None = None) -> float:
        raw = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return raw * (1.0 + self.jitter * (2.0 * (rng or random).random() - 1.0))


DEFAULT_BACKOFF = Backoff()


def claim(
    session_factory: SessionFactory,
    worker_id: str,
    lease_seconds: float,
    states: Iterable[JobState] = (JobState.QUEUED,),
    now: datetime | None = None,
) -> ClaimedJob | None:
    """Take the oldest due job in ``states`` with a lease, or None when there is none."""
    now = now or utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        job = session.scalars(_due(states, now).with_for_update(skip_locked=True).limit(1)).first()
        if job is None:
            return None
        _take_lease(session, job, worker_id, lease_seconds, now)
        return _claimed(job, worker_id)


def heartbeat(
    session_factory: SessionFactory, job_id: int, worker_id: str, lease_seconds: float, now: datetime | None = None
) -> bool:
    """Extend the lease; False when the worker no longer holds it (taken over or superseded)."""
    now = now or utcnow()
    with session_factory.begin() as session:
        job = _locked(session, job_id)
        if not holds_lease(job, worker_id):
            return False
        job.heartbeat_at = now
        job.lease_expires_at = now + timedelta(seconds=lease_seconds)
        return True


def complete(
    session_factory: SessionFactory,
    job_id: int,
    worker_id: str,
    new_state: JobState = JobState.RESULTS_BUILT,
    finish: Finish | None = None,
    **detail: Any,
) -> bool:
    """Release the lease and move the job to ``new_state``; ``finish(session, job)`` runs first in
    the same transaction (e.g. to add result and outbox rows). False, with nothing written, when
    the worker no longer holds the lease."""
    with session_factory.begin() as session:
        job = _locked(session, job_id)
        if not holds_lease(job, worker_id):
            return False
        if finish is not None:
            finish(session, job)
        _release(job)
        if JobState(job.state) != new_state:
            transition(session, job, new_state, actor=worker_id, attempt=job.attempts, **detail)
        return True


def fail(
    session_factory: SessionFactory,
    job_id: int,
    worker_id: str,
    error: str,
    retryable: bool,
    max_attempts: int,
    backoff: Backoff = DEFAULT_BACKOFF,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> JobState | None:
    """Record a failed attempt: a retryable one goes back to the queue after a backoff until
    ``max_attempts`` attempts were made, then FAILED; a permanent one goes to FAILED. Returns the
    job's new state, or None when the worker no longer holds the lease."""
    now = now or utcnow()
    with session_factory.begin() as session:
        job = _locked(session, job_id)
        if not holds_lease(job, worker_id):
            return None
        job.reason = error[:MAX_REASON_CHARS]
        _release(job)
        if retryable and job.attempts < max_attempts:
            delay = backoff.delay_seconds(job.attempts, rng)
            job.next_attempt_at = now + timedelta(seconds=delay)
            _back_to_queue(session, job, worker_id, "JOB_RETRY_SCHEDULED", retry_in_s=round(delay, 3))
        else:
            transition(session, job, JobState.FAILED, actor=worker_id, attempt=job.attempts, retryable=retryable)
        return JobState(job.state)


def requeue_expired(
    session_factory: SessionFactory, now: datetime | None = None, max_attempts: int | None = None
) -> int:
    """Put back the jobs whose lease expired (a dead or hung worker): RUNNING → QUEUED, audited
    JOB_LEASE_EXPIRED; with ``max_attempts``, a job that already used them goes to FAILED instead
    (a job that kills its worker every time must not loop). Returns how many were put back."""
    now = now or utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        stmt = select(Job).where(Job.lease_owner.is_not(None), Job.lease_expires_at < now).order_by(Job.id)
        expired = session.scalars(stmt.with_for_update(skip_locked=True)).all()
        for job in expired:
            _expire(session, job, max_attempts)
        return len(expired)


def retry_failed(session_factory: SessionFactory, job_id: int, actor: str = "operator") -> None:
    """An operator's retry: FAILED → QUEUED with a fresh attempt budget (IllegalTransition otherwise)."""
    with session_factory.begin() as session:
        job = _locked(session, job_id)
        previous_reason = job.reason
        transition(session, job, JobState.QUEUED, actor=actor, previous_reason=previous_reason)
        job.attempts = 0
        job.next_attempt_at = None
        job.reason = None


def holds_lease(job: Job, worker_id: str) -> bool:
    """The worker's lease stands until someone else takes the job over (an expired lease that no
    one has put back yet still counts) and as long as the job was not superseded meanwhile."""
    return job.lease_owner == worker_id and JobState(job.state) != JobState.SUPERSEDED


def _due(states: Iterable[JobState], now: datetime):  # type: ignore[no-untyped-def]
    return (
        select(Job)
        .where(
            Job.state.in_([JobState(s).value for s in states]),
            or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now),
            or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
        )
        .order_by(Job.id)
    )


def _take_lease(session: Session, job: Job, worker_id: str, lease_seconds: float, now: datetime) -> None:
    job.lease_owner = worker_id
    job.lease_expires_at = now + timedelta(seconds=lease_seconds)
    job.heartbeat_at = now
    job.attempts = (job.attempts or 0) + 1
    job.next_attempt_at = None
    if JobState(job.state) == JobState.QUEUED:
        transition(session, job, JobState.RUNNING, actor=worker_id, attempt=job.attempts)
    else:
        audit.record(
            session,
            "JOB_CLAIMED",
            study_key=job.study.study_key,
            job_id=job.id,
            actor=worker_id,
            state=job.state,
            attempt=job.attempts,
        )


def _claimed(job: Job, worker_id: str) -> ClaimedJob:
    return ClaimedJob(
        job_id=job.id,
        study_id=job.study_id,
        study_key=job.study.study_key,
        study_version=job.study_version,
        state=JobState(job.state),
        kind=job.kind,
        series_key=job.series_key,
        attempts=job.attempts,
        worker_id=worker_id,
        lease_expires_at=as_utc(job.lease_expires_at),  # type: ignore[arg-type]
    )


def _locked(session: Session, job_id: int) -> Job:
    begin_write(session)
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        raise JobNotFound(job_id)
    return job


def _release(job: Job) -> None:
    job.lease_owner = None
    job.lease_expires_at = None


def _back_to_queue(session: Session, job: Job, actor: str, event: str, **detail: Any) -> None:
    """RUNNING → QUEUED; a job leased in another state keeps it and is only audited."""
    if JobState(job.state) == JobState.RUNNING:
        transition(session, job, JobState.QUEUED, actor=actor, event=event, attempt=job.attempts, **detail)
    else:
        audit.record(
            session,
            event,
            study_key=job.study.study_key,
            job_id=job.id,
            actor=actor,
            state=job.state,
            attempt=job.attempts,
            **detail,
        )


def _expire(session: Session, job: Job, max_attempts: int | None) -> None:
    owner = job.lease_owner
    _release(job)
    if max_attempts is not None and job.attempts >= max_attempts and JobState(job.state) == JobState.RUNNING:
        job.reason = f"lease expired on attempt {job.attempts} of {max_attempts} (worker died or hung)"
        transition(session, job, JobState.FAILED, event="JOB_LEASE_EXPIRED", lost_worker=owner)
        return
    _back_to_queue(session, job, "node", "JOB_LEASE_EXPIRED", lost_worker=owner)
