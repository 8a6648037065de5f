"""Study completion: a study is complete once no instance arrived for ``stable_seconds`` (as
Orthanc's StableAge). Completing it sets ``Study.completed_at`` and moves its current job
RECEIVED → COMPLETE (audited in the same transaction); series selection and de-identification
follow in the pipeline (``assemble.series.select_series`` over ``study_instances``).

A late instance re-opens a completed study (the receiver bumps ``Study.version``, clears
``completed_at`` and ``open_job`` supersedes the earlier job); the new version completes here in
turn. Each study completes in its own transaction under its row lock (PostgreSQL: skipped while
the receiver holds it; SQLite: the write lock) and stability is re-checked there, so an instance
arriving meanwhile keeps the study open.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.assemble.series import InstanceTags
from dicom_node.config import Settings
from dicom_node.db.models import Instance, Job, Study, utcnow
from dicom_node.jobs.lifecycle import open_job, transition
from dicom_node.jobs.locks import as_utc, begin_write
from dicom_node.jobs.states import JobState


def find_stable_studies(session: Session, now: datetime, stable_seconds: float) -> list[Study]:
    """Studies still receiving whose last instance is at least ``stable_seconds`` old."""
    cutoff = now - timedelta(seconds=stable_seconds)
    stmt = select(Study).where(Study.completed_at.is_(None), Study.last_received_at <= cutoff).order_by(Study.id)
    return list(session.scalars(stmt))


def is_stable(study: Study, now: datetime, stable_seconds: float) -> bool:
    last = as_utc(study.last_received_at)
    return study.completed_at is None and last is not None and last <= now - timedelta(seconds=stable_seconds)


def complete_stable_studies(
    session_factory: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> list[int]:
    """Complete every stable study; returns the ids of the studies completed."""
    now = now or utcnow()
    with session_factory() as session:
        candidates = [s.id for s in find_stable_studies(session, now, settings.stable_seconds)]
    return [sid for sid in candidates if _complete_one(session_factory, sid, now, settings.stable_seconds)]


def _complete_one(session_factory: sessionmaker[Session], study_id: int, now: datetime, stable_seconds: float) -> bool:
    with session_factory.begin() as session:
        begin_write(session)
        stmt = select(Study).where(Study.id == study_id).with_for_update(skip_locked=True)
        study = session.scalars(stmt).first()
        if study is None or not is_stable(study, now, stable_seconds):
            return False  # the receiver holds it, or an instance arrived since the candidate query
        complete_study(session, study, now)
        return True


def complete_study(session: Session, study: Study, now: datetime) -> Job:
    """Mark ``study`` complete and move its current job RECEIVED → COMPLETE (caller's transaction).
    A job already past RECEIVED (e.g. quarantined) is left as it is."""
    study.completed_at = now
    job = open_job(session, study)
    if JobState(job.state) == JobState.RECEIVED:
        transition(session, job, JobState.COMPLETE, instances=_count(session, study.id))
    return job


def study_instances(session: Session, study_id: int) -> list[InstanceTags]:
    """All instances of a study, every version (a late instance adds to the study), for selection."""
    stmt = select(Instance).where(Instance.study_id == study_id).order_by(Instance.id)
    return [InstanceTags.from_row(row) for row in session.scalars(stmt)]


def _count(session: Session, study_id: int) -> int:
    return len(session.scalars(select(Instance.id).where(Instance.study_id == study_id)).all())
