"""The job state table on SQLite and PostgreSQL: every legal edge works and is audited in the
same transaction, every illegal one raises."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dicom_node.db.models import AuditEvent, Job
from dicom_node.jobs.lifecycle import transition
from dicom_node.jobs.states import TRANSITIONS, IllegalTransition, JobState
from tests.jobs.jobfactory import PATH_TO, new_job, session_factory

LEGAL = [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets, key=lambda s: s.value)]
ILLEGAL = [(a, b) for a in JobState for b in JobState if b not in TRANSITIONS[a]]


def test_every_legal_transition_works_and_is_audited(db_url: str) -> None:
    factory = session_factory(db_url)
    with factory.begin() as session:
        jobs = {}
        for n, (old, new) in enumerate(LEGAL):
            job = new_job(session, n, old)
            transition(session, job, new, actor="tester", edge=n)
            jobs[n] = job.id
    with factory() as session:
        for n, (old, new) in enumerate(LEGAL):
            job = session.get(Job, jobs[n])
            assert job is not None and job.state == new.value
            events = session.scalars(
                select(AuditEvent).where(AuditEvent.job_id == job.id).order_by(AuditEvent.id)
            ).all()
            last = events[-1]
            assert (last.event, last.actor, last.detail["previous"], last.detail["edge"]) == (
                f"JOB_{new.name}",
                "tester",
                old.value,
                n,
            )
            assert last.study_key == job.study.study_key
            assert len(events) == 1 + len(PATH_TO[old]) + 1  # received + path + this edge


def test_every_illegal_transition_raises_and_changes_nothing(db_url: str) -> None:
    assert len(ILLEGAL) > 80
    factory = session_factory(db_url)
    with factory.begin() as session:
        jobs = {state: new_job(session, n, state) for n, state in enumerate(JobState)}
        audits_before = len(session.scalars(select(AuditEvent)).all())
        for old, new in ILLEGAL:
            with pytest.raises(IllegalTransition, match=f"{old.value} → {new.value}"):
                transition(session, jobs[old], new)
            assert jobs[old].state == old.value
        session.flush()
        assert len(session.scalars(select(AuditEvent)).all()) == audits_before


@pytest.mark.parametrize(("old", "new"), [(JobState.QUEUED, JobState.RUNNING), (JobState.RUNNING, JobState.FAILED)])
def test_rolled_back_transition_leaves_neither_state_nor_audit(db_url: str, old: JobState, new: JobState) -> None:
    factory = session_factory(db_url)
    with factory.begin() as session:
        job_id = new_job(session, 1, old).id
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        transition(session, job, new)
        session.flush()  # both rows are written to the database inside the transaction …
        assert session.scalar(select(AuditEvent).where(AuditEvent.event == f"JOB_{new.name}")) is not None
        session.rollback()  # … and go together
    with factory() as session:
        assert session.get(Job, job_id).state == old.value  # type: ignore[union-attr]
        assert session.scalar(select(AuditEvent).where(AuditEvent.event == f"JOB_{new.name}")) is None
