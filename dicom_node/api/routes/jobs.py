"""/api/jobs: the queue, one job's history, operator retry, the PDF report."""

from __future__ import annotations

from typing import Annotated, Any

import pydicom
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.api.errors import Conflict, NotFound
from dicom_node.api.routes.deps import db_session
from dicom_node.db.models import AuditEvent, Delivery, Job, ResultObject
from dicom_node.jobs.queue import retry_failed
from dicom_node.jobs.states import IllegalTransition, JobState

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
DB = Annotated[Session, Depends(db_session)]


def job_view(job: Job) -> dict[str, Any]:
    """Pseudonymous view of a job: no PHI leaves through the API."""
    return {
        "id": job.id,
        "study_key": job.study.study_key,
        "version": job.study_version,
        "state": job.state,
        "kind": job.kind,
        "reason": job.reason,
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "summary": job.summary,
    }


@router.get("")
def list_jobs(db: DB, state: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if state is not None:
        if state not in {s.value for s in JobState}:
            raise Conflict(f"unknown job state {state!r}")
        query = query.where(Job.state == state)
    return [job_view(job) for job in db.scalars(query)]


@router.get("/{job_id}")
def get_job(job_id: int, db: DB) -> dict[str, Any]:
    job = _job(db, job_id)
    events = db.scalars(select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.id))
    deliveries = db.scalars(select(Delivery).where(Delivery.job_id == job_id).order_by(Delivery.id))
    results = db.scalars(select(ResultObject).where(ResultObject.job_id == job_id).order_by(ResultObject.id))
    return {
        **job_view(job),
        "events": [{"at": e.at.isoformat(), "event": e.event, "detail": e.detail} for e in events],
        "deliveries": [
            {"id": d.id, "destination": d.destination, "channel": d.channel, "state": d.state,
             "attempts": d.attempts, "last_error": d.last_error}
            for d in deliveries
        ],
        "results": [{"id": r.id, "kind": r.kind} for r in results],
    }


@router.post("/{job_id}/retry")
def retry_job(job_id: int, db: DB, request: Request) -> dict[str, Any]:
    job = _job(db, job_id)
    if JobState(job.state) != JobState.FAILED:
        raise Conflict(f"job {job_id} is {job.state}; only failed jobs can be retried")
    db.rollback()  # retry_failed runs (and locks) in its own transaction
    try:
        retry_failed(request.app.state.session_factory, job_id)
    except IllegalTransition as exc:  # it changed state meanwhile
        raise Conflict(str(exc)) from None
    db.refresh(job)
    return job_view(job)


@router.get("/{job_id}/report.pdf")
def report_pdf(job_id: int, db: DB, request: Request) -> Response:
    _job(db, job_id)
    row = db.scalars(
        select(ResultObject).where(ResultObject.job_id == job_id, ResultObject.kind == "pdf")
    ).first()
    if row is None:
        raise NotFound(f"job {job_id} has no PDF report (yet)")
    ds = pydicom.dcmread(request.app.state.settings.data_dir / row.path)
    return Response(bytes(ds.EncapsulatedDocument).rstrip(b"\x00"), media_type="application/pdf")


def _job(db: Session, job_id: int) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job
