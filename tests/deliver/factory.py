"""Jobs with results in the outbox, and what the tests read back."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.db.models import AuditEvent, Job, ResultObject, Study
from dicom_node.deliver import enqueue
from dicom_node.jobs.states import JobState


def make_job(
    session_factory: sessionmaker[Session], settings, files: list[Path], *, oru: str | None = None,  # type: ignore[no-untyped-def]
    state: JobState = JobState.RESULTS_BUILT,
) -> int:
    """A job in ``state`` whose results are ``files`` (+ an ORU text), enqueued; returns its id."""
    with session_factory() as session, session.begin():
        job = Job(study=Study(study_key=uuid.uuid4().hex, patient_key=uuid.uuid4().hex), state=state.value, kind="ct")
        session.add(job)
        session.flush()
        folder = settings.results_dir / f"job{job.id}"
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for path in files:
            shutil.copy(path, folder / path.name)
            results.append(ResultObject(job_id=job.id, kind="sr", path=str((folder / path.name).relative_to(settings.data_dir))))
        if oru is not None:
            (folder / "oru.hl7").write_bytes(oru.encode("utf-8"))
            results.append(ResultObject(job_id=job.id, kind="oru", path=str((folder / "oru.hl7").relative_to(settings.data_dir))))
        enqueue(session, job, results, settings)
        return job.id


def audit_events(session_factory: sessionmaker[Session], event: str, job_id: int | None = None) -> list[AuditEvent]:
    with session_factory() as session:
        query = select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
        if job_id is not None:
            query = query.where(AuditEvent.job_id == job_id)
        return list(session.scalars(query))


def job_state(session_factory: sessionmaker[Session], job_id: int) -> str:
    with session_factory() as session:
        return session.get(Job, job_id).state  # type: ignore[union-attr]
