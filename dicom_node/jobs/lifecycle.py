"""Job state changes. Each one writes its audit event in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node import audit
from dicom_node.db.models import Job, Study, utcnow
from dicom_node.jobs.states import TERMINAL, JobState, check_transition


def transition(
    session: Session,
    job: Job,
    new: JobState,
    *,
    actor: str = "node",
    event: str | None = None,
    **detail: Any,
) -> None:
    """Move ``job`` to ``new`` (raises IllegalTransition) and audit it, in the same transaction.

    The audit event is ``JOB_<NEW STATE>`` unless ``event`` names why (e.g. JOB_LEASE_EXPIRED);
    then the new state is in the detail."""
    old = JobState(job.state)
    check_transition(old, new)
    job.state = new.value
    job.updated_at = utcnow()
    if event is not None:
        detail = {"state": new.value, **detail}
    audit.record(
        session,
        event or f"JOB_{new.name}",
        study_key=job.study.study_key,
        job_id=job.id,
        actor=actor,
        previous=old.value,
        version=job.study_version,
        **detail,
    )


def open_job(session: Session, study: Study) -> Job:
    """The job for the study's current version, created in state RECEIVED if it does not exist;
    active jobs of earlier versions are superseded (a late instance re-opened the study)."""
    jobs = session.scalars(select(Job).where(Job.study_id == study.id)).all()
    for job in jobs:
        if job.study_version == study.version:
            return job
    for job in jobs:
        if job.study_version < study.version and JobState(job.state) != JobState.SUPERSEDED:
            transition(session, job, JobState.SUPERSEDED, by_version=study.version)
    job = Job(study=study, study_version=study.version, state=JobState.RECEIVED.value)
    session.add(job)
    session.flush()
    audit.record(session, "JOB_RECEIVED", study_key=study.study_key, job_id=job.id, version=study.version)
    return job


def is_terminal(job: Job) -> bool:
    return JobState(job.state) in TERMINAL
