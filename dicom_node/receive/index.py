"""The instance index: what received instances do to the database, in the caller's
transaction — for each, a new row (creating or re-opening its study), nothing (an identical duplicate),
or quarantine (a conflicting duplicate, or a study that already belongs to another patient).

The file arrives already placed in the spool; a quarantined one moves on to the quarantine
directory (``Spool.quarantine``); the caller syncs that directory and commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node import audit
from dicom_node.db.models import Instance, QuarantinedInstance, Study, utcnow
from dicom_node.jobs.lifecycle import open_job
from dicom_node.receive.spool import HeldFile, Spool
from dicom_node.receive.tags import InstanceKeys

log = logging.getLogger(__name__)


class Outcome(str, Enum):
    STORED = "stored"
    IDENTICAL_DUPLICATE = "identical_duplicate"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    PATIENT_CONFLICT = "patient_conflict"


@dataclass(frozen=True)
class Incoming:
    """A validated instance, described without PHI."""

    keys: InstanceKeys
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    tags: dict[str, Any]
    calling_ae: str


@dataclass(frozen=True)
class Indexed:
    outcome: Outcome
    kept: bool  # a row now refers to the file; otherwise the caller discards it


class GroupIndex:
    """Indexes a group of instances in one transaction: two queries for the whole group, each
    study updated once, rows flushed together (the per-instance ORM round trips were the cost)."""

    def __init__(self, session: Session, spool: Spool, group: list[tuple[Incoming, HeldFile]]) -> None:
        self.session = session
        self.spool = spool
        sop_keys = {incoming.keys.sop_key for incoming, _ in group}
        study_keys = {incoming.keys.study_key for incoming, _ in group}
        self.known_sha: dict[str, str] = dict(
            session.execute(select(Instance.sop_key, Instance.sha256).where(Instance.sop_key.in_(sop_keys))).tuples().all()
        )
        self.studies = {s.study_key: s for s in session.scalars(select(Study).where(Study.study_key.in_(study_keys)))}
        self.touched: set[str] = set()

    def index(self, incoming: Incoming, held: HeldFile) -> Indexed:
        keys = incoming.keys
        known = self.known_sha.get(keys.sop_key)
        if known is not None:
            if known == held.sha256:
                return Indexed(Outcome.IDENTICAL_DUPLICATE, kept=False)
            return quarantine(self.session, incoming, held, self.spool, Outcome.DUPLICATE_CONFLICT)
        study = self.studies.get(keys.study_key)
        if study is not None and study.patient_key != keys.patient_key:
            return quarantine(self.session, incoming, held, self.spool, Outcome.PATIENT_CONFLICT)
        study = self.touch(study, incoming)
        self.session.add(instance_row(incoming, held, study, self.spool.relative(held.path)))
        audit.record(self.session, "RECEIVED", study_key=keys.study_key, sop_key=keys.sop_key,
                     series_key=keys.series_key, version=study.version, calling_ae=incoming.calling_ae)
        self.known_sha[keys.sop_key] = held.sha256  # the same instance twice in one group
        return Indexed(Outcome.STORED, kept=True)

    def touch(self, study: Study | None, incoming: Incoming) -> Study:
        """Create / re-open / stamp the study once per group."""
        key = incoming.keys.study_key
        if key not in self.touched:
            self.studies[key] = touch_study(self.session, study, incoming)
            self.touched.add(key)
        return self.studies[key]


def index_group(session: Session, spool: Spool, group: list[tuple[Incoming, HeldFile]]) -> list[Indexed]:
    """Index every instance of ``group`` in ``session``; unique-key races raise IntegrityError here."""
    index = GroupIndex(session, spool, group)
    results = [index.index(incoming, held) for incoming, held in group]
    session.flush()
    return results


def instance_row(incoming: Incoming, held: HeldFile, study: Study, spool_path: str) -> Instance:
    return Instance(
        study_id=study.id,  # not study=: back_populates would load every instance of the study
        series_key=incoming.keys.series_key,
        sop_key=incoming.keys.sop_key,
        sop_class_uid=incoming.sop_class_uid,
        transfer_syntax_uid=incoming.transfer_syntax_uid,
        modality=incoming.modality,
        spool_path=spool_path,
        sha256=held.sha256,
        size_bytes=held.size_bytes,
        study_version=study.version,
        tags=incoming.tags,
    )


def touch_study(session: Session, study: Study | None, incoming: Incoming) -> Study:
    """Create the study (and its job) if new; a completed study is re-opened as a new version."""
    now = utcnow()
    if study is None:
        study = Study(study_key=incoming.keys.study_key, patient_key=incoming.keys.patient_key,
                      calling_ae=incoming.calling_ae, first_received_at=now, last_received_at=now)
        session.add(study)
        session.flush()
        open_job(session, study)
        return study
    study.last_received_at = now
    if study.completed_at is not None:
        study.version += 1
        study.completed_at = None
        open_job(session, study)
        audit.record(session, "STUDY_REOPENED", study_key=study.study_key, version=study.version)
    return study


def quarantine(session: Session, incoming: Incoming, held: HeldFile, spool: Spool, why: Outcome) -> Indexed:
    keys = incoming.keys
    known = session.scalar(
        select(QuarantinedInstance).where(
            QuarantinedInstance.sop_key == keys.sop_key, QuarantinedInstance.sha256 == held.sha256
        )
    )
    if known is not None:
        return Indexed(why, kept=False)  # the same conflicting bytes again: already held
    session.add(QuarantinedInstance(reason=why.value, path=spool.quarantine(held), sha256=held.sha256,
                                    study_key=keys.study_key, sop_key=keys.sop_key))
    audit.record(session, why.name, study_key=keys.study_key, sop_key=keys.sop_key,
                 series_key=keys.series_key, calling_ae=incoming.calling_ae)
    log.warning("C-STORE quarantined (%s) sop=%s study=%s", why.value, keys.sop_key, keys.study_key)
    return Indexed(why, kept=True)
