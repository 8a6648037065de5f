"""Row locking that works the same on PostgreSQL and SQLite.

PostgreSQL locks rows: ``SELECT … FOR UPDATE`` (``SKIP LOCKED`` where a worker should take the
next free row instead of waiting). SQLite has one database-wide write lock and ignores FOR UPDATE,
so a transaction that reads-then-writes starts with ``BEGIN IMMEDIATE``: it takes the write lock
before its first read, which serialises check-then-update across threads and processes. With
pysqlite's default (legacy) transaction handling an explicit BEGIN is passed through and the
driver adds no BEGIN of its own while one is open; ``Session.commit`` then commits it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session


def begin_write(session: Session) -> None:
    """Call first in a transaction that will write: on SQLite take the write lock now."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); make them comparable with aware ones."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
