"""SQLAlchemy 2 typed models: the node's operational state.

No PHI is stored in clear: studies, series, instances and patients are keyed by their keyed-HMAC
pseudonyms (``dicom_node.privacy.pseudonym``); the map back to the real identifiers lives in
``ReidentificationMap`` encrypted with a key derived from the site key.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Study(Base):
    """A study as received; ``study_key`` is the pseudonymous Study Instance UID."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_key: Mapped[str] = mapped_column(String(64), unique=True)
    patient_key: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)  # +1 each time a late instance re-opens it
    first_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)  # None while receiving
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    instances: Mapped[list["Instance"]] = relationship(back_populates="study")
    jobs: Mapped[list["Job"]] = relationship(back_populates="study")


class Instance(Base):
    """One accepted SOP instance: its spool file (named by us, never from DICOM values) and the
    technical tags assembly needs, read once at receive time."""

    __tablename__ = "instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_key: Mapped[str] = mapped_column(String(64), index=True)
    sop_key: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    spool_path: Mapped[str] = mapped_column(String(255))  # relative to data_dir
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    study_version: Mapped[int] = mapped_column(Integer, default=1)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)  # geometry, image type, rescale…
    study: Mapped[Study] = relationship(back_populates="instances")


class QuarantinedInstance(Base):
    """An instance kept aside and never analysed (conflicting duplicate, patient clash, …)."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(String(255))  # relative to data_dir
    sha256: Mapped[str] = mapped_column(String(64))
    study_key: Mapped[str] = mapped_column(String(64), default="")
    sop_key: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One analysis of one version of a study. ``state`` follows ``jobs.states.TRANSITIONS``."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_next", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    study_version: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(32), default="received")
    kind: Mapped[str] = mapped_column(String(16), default="")  # ct | cxr | pathology
    series_key: Mapped[str | None] = mapped_column(String(64), default=None)  # chosen series
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # not-eligible / failure reason
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # pseudonymous findings summary
    study: Mapped[Study] = relationship(back_populates="jobs")


class ReidentificationMap(Base):
    """Pseudonym → original identifiers of one study version, encrypted (Fernet, site-derived key)."""

    __tablename__ = "reid_maps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    study_version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ResultObject(Base):
    """A result built for a job (SEG, SR, KOS, PDF, ORU), stored re-identified on disk."""

    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # seg | sr | kos | pdf | oru
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    path: Mapped[str] = mapped_column(String(255))  # relative to data_dir
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """The transactional outbox: one row per (result, destination), retried until acknowledged."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state_next", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))  # dimse | stow | mllp
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only audit trail; pseudonymous identifiers only (never PHI)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    study_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    actor: Mapped[str] = mapped_column(String(64), default="node")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
