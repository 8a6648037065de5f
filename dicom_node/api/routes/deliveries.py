"""/api/deliveries: outbound deliveries and dead-letter replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.api.errors import Conflict, NotFound
from dicom_node.api.routes.deps import db_session
from dicom_node.db.models import Delivery
from dicom_node.deliver.outbox import retry_dead

router = APIRouter(prefix="/api/deliveries", tags=["deliveries"])
DB = Annotated[Session, Depends(db_session)]
STATES = {"pending", "delivered", "dead"}


def delivery_view(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id, "job_id": d.job_id, "destination": d.destination, "channel": d.channel,
        "state": d.state, "attempts": d.attempts, "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
    }


@router.get("")
def list_deliveries(db: DB, state: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if state is not None:
        if state not in STATES:
            raise Conflict(f"unknown delivery state {state!r}; one of {sorted(STATES)}")
        query = query.where(Delivery.state == state)
    return [delivery_view(d) for d in db.scalars(query)]


@router.post("/{delivery_id}/retry")
def retry_delivery(delivery_id: int, db: DB, request: Request) -> dict[str, Any]:
    d = db.get(Delivery, delivery_id)
    if d is None:
        raise NotFound(f"no delivery {delivery_id}")
    if d.state != "dead":
        raise Conflict(f"delivery {delivery_id} is {d.state}; only dead-lettered deliveries can be retried")
    db.rollback()  # retry_dead runs its own transaction
    retry_dead(request.app.state.session_factory, [delivery_id])
    db.refresh(d)
    return delivery_view(d)
