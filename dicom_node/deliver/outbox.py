"""The transactional outbox: ``deliveries`` rows written in the same transaction as the results.

One row per (result, destination): DICOM results (SEG, SR, KOS, PDF) go to every configured PACS
(channel ``dimse`` or ``stow`` by the destination's kind), the ORU^R01 to every configured EHR
(channel ``mllp``). ``DeliverySender`` works the rows off; an operator replays dead ones with
``retry_dead`` (`pulmonode deliveries retry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node import audit
from dicom_node.config import Settings
from dicom_node.db.models import Delivery, Job, ResultObject, Study, utcnow


class DeliveryState(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


ORU_KIND = "oru"
MLLP = "mllp"


def is_hl7(result: ResultObject) -> bool:
    return result.kind == ORU_KIND or result.path.endswith(".hl7")


def routes(result: ResultObject, settings: Settings) -> list[tuple[str, str]]:
    """(destination name, channel) pairs this result goes to."""
    if is_hl7(result):
        return [(ehr.name, MLLP) for ehr in settings.ehr]
    return [(pacs.name, pacs.kind) for pacs in settings.pacs]


def enqueue(session: Session, job: Job, results: list[ResultObject], settings: Settings) -> list[Delivery]:
    """Add the results (if not yet added) and one pending Delivery per (result, destination) to
    the caller's transaction; the caller commits them together with the job's state change.
    Returns the new rows (empty when no destination is configured for any result)."""
    session.add_all(results)
    session.flush()  # result ids for the rows below
    rows = [
        Delivery(job_id=job.id, result_id=result.id, destination=name, channel=channel, next_attempt_at=utcnow())
        for result in results
        for name, channel in routes(result, settings)
    ]
    session.add_all(rows)
    return rows


def deliveries(session: Session, *, state: str | None = None, job_id: int | None = None) -> list[Delivery]:
    """Outbox rows, oldest first (for `pulmonode deliveries list` and the dashboard)."""
    query = select(Delivery).order_by(Delivery.id)
    if state is not None:
        query = query.where(Delivery.state == DeliveryState(state).value)
    if job_id is not None:
        query = query.where(Delivery.job_id == job_id)
    return list(session.scalars(query))


def retry_dead(session_factory: Callable[[], Session], delivery_ids: Iterable[int] | None = None) -> int:
    """Put dead rows (all, or those listed) back to pending, due now, backoff restarted; audited
    as the operator's act. Returns how many rows were replayed."""
    with session_factory() as session, session.begin():
        query = (
            select(Delivery, Study.study_key)
            .join(Job, Job.id == Delivery.job_id)
            .join(Study, Study.id == Job.study_id)
            .where(Delivery.state == DeliveryState.DEAD.value)
        )
        if delivery_ids is not None:
            query = query.where(Delivery.id.in_(list(delivery_ids)))
        rows = session.execute(query).all()
        for row, study_key in rows:
            _replay(session, row, study_key)
        return len(rows)


def _replay(session: Session, row: Delivery, study_key: str) -> None:
    audit.record(
        session, "DELIVERY_RETRY", study_key=study_key, job_id=row.job_id, actor="operator",
        delivery_id=row.id, destination=row.destination, channel=row.channel, previous_error=row.last_error,
    )
    row.state = DeliveryState.PENDING.value
    row.attempts = 0
    row.next_attempt_at = utcnow()
    row.lease_owner = None
    row.lease_expires_at = None
