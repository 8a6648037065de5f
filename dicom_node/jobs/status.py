"""What ``pulmonode status`` shows about the queue: counts per job state, the oldest queued job's
age, the outbox (deliveries pending / dead) and recent failures (pseudonymous study keys only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_node.db.models import Delivery, Job, Study, utcnow
from dicom_node.jobs.locks import as_utc
from dicom_node.jobs.states import JobState

DELIVERY_STATES = ("pending", "delivered", "dead")


def queue_summary(session: Session, now: datetime | None = None, recent: int = 10) -> dict[str, Any]:
    """A JSON-safe snapshot of the queue and the outbox."""
    now = now or utcnow()
    return {
        "jobs": _counts(session, Job.state, [s.value for s in JobState]),
        "oldest_queued_age_seconds": _oldest_queued_age(session, now),
        "deliveries": _counts(session, Delivery.state, list(DELIVERY_STATES)),
        "recent_failures": _recent_failures(session, recent),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines for a terminal."""
    jobs = ", ".join(f"{state} {n}" for state, n in summary["jobs"].items() if n) or "none"
    age = summary["oldest_queued_age_seconds"]
    d = summary["deliveries"]
    lines = [
        f"jobs: {jobs}",
        f"oldest queued: {'-' if age is None else f'{age:.0f} s'}",
        f"deliveries: pending {d.get('pending', 0)}, dead {d.get('dead', 0)}, delivered {d.get('delivered', 0)}",
    ]
    failures = summary["recent_failures"]
    if failures:
        lines.append("recent failures:")
        lines += [f"  job {f['job_id']} study {f['study_key']} v{f['version']}: {f['reason']}" for f in failures]
    return "\n".join(lines)


def _counts(session: Session, column: Any, known: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(known, 0)
    for state, n in session.execute(select(column, func.count()).group_by(column)):
        counts[state] = n
    return counts


def _oldest_queued_age(session: Session, now: datetime) -> float | None:
    oldest = session.scalar(select(func.min(Job.updated_at)).where(Job.state == JobState.QUEUED.value))
    if oldest is None:
        return None
    if isinstance(oldest, str):  # SQLite aggregates come back as text
        oldest = datetime.fromisoformat(oldest)
    return max(0.0, (now - as_utc(oldest)).total_seconds())  # type: ignore[operator]


def _recent_failures(session: Session, limit: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Job.id, Study.study_key, Job.study_version, Job.reason, Job.updated_at)
        .join(Study, Study.id == Job.study_id)
        .where(Job.state == JobState.FAILED.value)
        .order_by(Job.updated_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return [
        {"job_id": i, "study_key": key, "version": v, "reason": reason or "", "at": as_utc(at).isoformat()}  # type: ignore[union-attr]
        for i, key, v, reason, at in rows
    ]
