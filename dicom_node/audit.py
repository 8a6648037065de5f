"""Append-only audit events. Callers pass pseudonymous identifiers only; the event is added to
the caller's session so it commits (or not) with the state change it records."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dicom_node.db.models import AuditEvent


def record(
    session: Session,
    event: str,
    *,
    study_key: str | None = None,
    job_id: int | None = None,
    actor: str = "node",
    **detail: Any,
) -> AuditEvent:
    row = AuditEvent(event=event, study_key=study_key, job_id=job_id, actor=actor, detail=detail)
    session.add(row)
    return row
