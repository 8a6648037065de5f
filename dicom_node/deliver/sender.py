"""The outbox sender: claims due deliveries with a lease, sends them, records each attempt.

A row is claimed with a short lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: an update
conditional on the row still being free), so two senders never send the same row at once; a
sender that dies leaves a lease that expires and the row is taken again. Each attempt is one
transaction: the row's new state, its audit events and — when the job's last delivery is
acknowledged — the job's move to DELIVERED.

Transient failures back off exponentially with jitter, capped at
``settings.delivery_max_backoff_seconds``, and are retried until acknowledged; permanent ones go
dead (a dead letter) until an operator replays them (``outbox.retry_dead``).
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from dicom_node import audit
from dicom_node.config import DicomDestination, HL7Destination, Settings
from dicom_node.db.models import Delivery, Job, ResultObject, Study, utcnow
from dicom_node.deliver import cstore, mllp, stow
from dicom_node.deliver.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from dicom_node.deliver.outbox import MLLP, DeliveryState
from dicom_node.jobs.lifecycle import transition
from dicom_node.jobs.states import JobState

log = logging.getLogger(__name__)

FINISHABLE = frozenset({JobState.RESULTS_BUILT, JobState.NOT_ELIGIBLE})


@dataclass(frozen=True)
class Claimed:
    """A delivery this sender holds the lease on, with what sending it needs."""

    delivery_id: int
    job_id: int
    study_key: str
    result_id: int
    result_kind: str
    path: Path
    destination: str
    channel: str


def backoff_seconds(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": between half and all of min(cap, base·2^(n-1))."""
    ceiling = min(cap_s, base_s * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class DeliverySender:
    """Works the outbox off. Several may run at once (threads, processes, machines)."""

    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Session],
        *,
        owner: str | None = None,
        lease_seconds: float = 120.0,
        batch_size: int = 20,
        base_backoff_seconds: float = 2.0,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.owner = owner or f"sender-{uuid.uuid4().hex[:12]}"
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.base_backoff_seconds = base_backoff_seconds
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.rng = rng or random.Random()

    # --- the loop --------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim up to ``batch_size`` due rows, send them, record the outcomes; returns how many
        were attempted (0: nothing was due)."""
        claimed = self._claim()
        for (channel, name), batch in _grouped(claimed).items():
            for item, error in zip(batch, self._send(channel, name, batch)):
                self._record(item, error)
        return len(claimed)

    def run_forever(self, stop_event: threading.Event) -> None:
        """``run_once`` until ``stop_event`` is set; sleeps ``poll_seconds`` when idle or when
        the database is unavailable (logged, retried)."""
        while not stop_event.is_set():
            try:
                attempted = self.run_once()
            except SQLAlchemyError:
                log.exception("delivery sender %s: database error; retrying", self.owner)
                attempted = 0
            if attempted == 0:
                stop_event.wait(self.poll_seconds)

    # --- claiming --------------------------------------------------------------------------

    def _claim(self) -> list[Claimed]:
        with self.session_factory() as session, session.begin():
            ids = self._take_leases(session)
            if not ids:
                return []
            rows = session.execute(
                select(Delivery, ResultObject, Study.study_key)
                .join(ResultObject, ResultObject.id == Delivery.result_id)
                .join(Job, Job.id == Delivery.job_id)
                .join(Study, Study.id == Job.study_id)
                .where(Delivery.id.in_(ids))
                .order_by(Delivery.id)
            ).all()
            return [self._claimed(d, r, key) for d, r, key in rows]

    def _take_leases(self, session: Session) -> list[int]:
        """Pick due, free rows and make them ours. PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED
        passes over rows another sender is claiming; SQLite: one UPDATE with the selection as
        its subquery, run under the database's single write lock. The UPDATE re-checks that each
        row is still free, so a row is never leased twice."""
        now = utcnow()
        candidate = aliased(Delivery)  # an alias: the subquery must not correlate to the UPDATE
        due = (
            select(candidate.id).where(*_free(candidate, now), candidate.next_attempt_at <= now)
            .order_by(candidate.next_attempt_at, candidate.id).limit(self.batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            # evaluated once, on its own: as a subquery of the UPDATE, PostgreSQL may re-run it
            # and SKIP LOCKED then passes over the rows this very UPDATE has just taken
            target = Delivery.id.in_(list(session.scalars(due.with_for_update(skip_locked=True))))
        else:
            target = Delivery.id.in_(due)
        claim = (
            update(Delivery).where(target, *_free(Delivery, now))
            .values(lease_owner=self.owner, lease_expires_at=now + self.lease)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        return list(session.scalars(claim))

    def _claimed(self, delivery: Delivery, result: ResultObject, study_key: str) -> Claimed:
        return Claimed(
            delivery_id=delivery.id, job_id=delivery.job_id, study_key=study_key, result_id=result.id,
            result_kind=result.kind, path=self.settings.data_dir / result.path,
            destination=delivery.destination, channel=delivery.channel,
        )

    # --- sending ---------------------------------------------------------------------------

    def _send(self, channel: str, name: str, batch: list[Claimed]) -> list[DeliveryError | None]:
        destination = self._destination(channel, name)
        if isinstance(destination, DeliveryError):
            return [destination for _ in batch]
        missing = [None if c.path.is_file() else PermanentDeliveryError(f"result file {c.path.name} is missing") for c in batch]
        present = [c.path for c, m in zip(batch, missing) if m is None]
        sent = iter(self._send_guarded(channel, destination, present) if present else [])
        return [m if m is not None else next(sent) for m in missing]

    def _send_guarded(
        self, channel: str, destination: DicomDestination | HL7Destination, paths: list[Path]
    ) -> list[DeliveryError | None]:
        """A bug or an unforeseen library error must not strand leased rows: it is recorded as a
        retryable failure (audited, backed off) and logged with its traceback."""
        try:
            return self._send_paths(channel, destination, paths)
        except Exception as exc:  # noqa: BLE001 - see docstring
            log.exception("delivery sender %s: unexpected error sending to %s", self.owner, destination.name)
            error = RetryableDeliveryError(f"unexpected {type(exc).__name__}: {exc}")
            return [error for _ in paths]

    def _send_paths(
        self, channel: str, destination: DicomDestination | HL7Destination, paths: list[Path]
    ) -> list[DeliveryError | None]:
        log.info("delivery sender %s: %d result(s) to %s via %s", self.owner, len(paths), destination.name, channel)
        if isinstance(destination, HL7Destination):
            return [mllp.send(path, destination) for path in paths]
        if channel == "stow":
            return stow.store(paths, destination, timeout_s=self.timeout_seconds)
        return cstore.store(paths, destination, self.settings.ae_title, timeout_s=self.timeout_seconds)

    def _destination(self, channel: str, name: str) -> DicomDestination | HL7Destination | DeliveryError:
        configured: list[DicomDestination] | list[HL7Destination]
        configured = self.settings.ehr if channel == MLLP else self.settings.pacs
        for destination in configured:
            if destination.name == name and (channel == MLLP or destination.kind == channel):
                return destination
        return PermanentDeliveryError(f"destination {name!r} ({channel}) is not configured")

    # --- recording -------------------------------------------------------------------------

    def _record(self, item: Claimed, error: DeliveryError | None) -> None:
        """One transaction: the row, its audit events and possibly the job's DELIVERED."""
        with self.session_factory() as session, session.begin():
            job = session.get(Job, item.job_id, with_for_update=True)  # serialises the last-row check
            row = session.get(Delivery, item.delivery_id, with_for_update=True)
            if row is None or job is None or row.lease_owner != self.owner:
                log.warning("delivery %d: lease lost before its outcome was recorded", item.delivery_id)
                return
            row.attempts += 1
            row.lease_owner = row.lease_expires_at = None
            outcome = self._apply(row, error)
            self._audit(session, item, row, outcome, error)
            if outcome == DeliveryState.DELIVERED.value:
                self._finish_job_if_done(session, job)

    def _apply(self, row: Delivery, error: DeliveryError | None) -> str:
        now = utcnow()
        if error is None:
            row.state, row.delivered_at, row.last_error = DeliveryState.DELIVERED.value, now, None
            return DeliveryState.DELIVERED.value
        row.last_error = str(error)
        if isinstance(error, PermanentDeliveryError):
            row.state = DeliveryState.DEAD.value
            return DeliveryState.DEAD.value
        delay = backoff_seconds(row.attempts, self.base_backoff_seconds, self.settings.delivery_max_backoff_seconds, self.rng)
        row.next_attempt_at = now + timedelta(seconds=delay)
        return "retry"

    def _audit(self, session: Session, item: Claimed, row: Delivery, outcome: str, error: DeliveryError | None) -> None:
        """Pseudonymous: the study key, destinations and error texts (statuses), no patient data."""
        detail = dict(
            delivery_id=row.id, result_id=item.result_id, result_kind=item.result_kind,
            destination=row.destination, channel=row.channel, attempt=row.attempts,
        )
        audit.record(session, "DELIVERY_ATTEMPT", study_key=item.study_key, job_id=item.job_id,
                     outcome=outcome, error=None if error is None else str(error), **detail)
        if outcome == DeliveryState.DELIVERED.value:
            audit.record(session, "DELIVERED", study_key=item.study_key, job_id=item.job_id, **detail)
        elif outcome == DeliveryState.DEAD.value:
            audit.record(session, "DELIVERY_DEAD", study_key=item.study_key, job_id=item.job_id, error=str(error), **detail)
        log.info("delivery %d to %s (%s): %s%s", row.id, row.destination, row.channel, outcome,
                 f" - {error}" if error else "")

    def _finish_job_if_done(self, session: Session, job: Job) -> None:
        undelivered = session.scalar(
            select(func.count()).select_from(Delivery)
            .where(Delivery.job_id == job.id, Delivery.state != DeliveryState.DELIVERED.value)
        )
        if undelivered == 0 and JobState(job.state) in FINISHABLE:
            transition(session, job, JobState.DELIVERED)


def _free(table: type[Delivery], now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Pending and not leased (or its lease expired)."""
    return (
        table.state == DeliveryState.PENDING.value,
        or_(table.lease_expires_at.is_(None), table.lease_expires_at < now),
    )


def _grouped(claimed: list[Claimed]) -> dict[tuple[str, str], list[Claimed]]:
    """Rows per (channel, destination): one association / request per PACS batch."""
    groups: dict[tuple[str, str], list[Claimed]] = defaultdict(list)
    for item in claimed:
        groups[(item.channel, item.destination)].append(item)
    return groups
