"""Study completion with an injected clock, on SQLite and PostgreSQL; late instances re-open."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from dicom_node.assemble.series import NotEligible, Selection, select_series
from dicom_node.assemble.stability import complete_stable_studies, find_stable_studies, study_instances
from dicom_node.db.models import AuditEvent, Instance, Job, Study
from dicom_node.jobs import queue
from dicom_node.jobs.lifecycle import transition
from dicom_node.jobs.locks import begin_write
from dicom_node.jobs.states import JobState
from dicom_node.jobs.worker import Worker
from tests.assemble.instances import PSEUDO, add_instances, add_study, ct_series, late_instance, series_key, to_tags
from tests.jobs.jobfactory import session_factory

T0 = datetime(2026, 11, 20, 10, 15, tzinfo=timezone.utc)


def _jobs(factory, study_id: int) -> list[Job]:  # type: ignore[no-untyped-def]
    with factory() as session:
        return list(session.scalars(select(Job).where(Job.study_id == study_id).order_by(Job.id)))


def _study_with(factory, datasets, at=T0) -> int:  # type: ignore[no-untyped-def]
    with factory.begin() as session:
        study = add_study(session, datasets[0].StudyInstanceUID, at)
        add_instances(session, study, datasets, at)
        return study.id


def test_study_completes_only_after_stable_seconds(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    settings = settings_factory(stable_seconds=60)
    slices = ct_series(n=40)
    study_id = _study_with(factory, slices)

    assert complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=59)) == []
    assert _jobs(factory, study_id)[0].state == JobState.RECEIVED.value

    assert complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=60)) == [study_id]
    [job] = _jobs(factory, study_id)
    assert job.state == "complete"
    with factory() as session:
        study = session.get(Study, study_id)
        assert study is not None and study.completed_at is not None
        audit = session.scalars(select(AuditEvent).where(AuditEvent.event == "JOB_COMPLETE")).one()
        assert audit.job_id == job.id and audit.detail["instances"] == 40
        assert find_stable_studies(session, T0 + timedelta(hours=1), 60) == []
    # completing again changes nothing
    assert complete_stable_studies(factory, settings, now=T0 + timedelta(hours=1)) == []


def test_a_new_instance_restarts_the_clock(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    settings = settings_factory(stable_seconds=60)
    slices = ct_series(n=40)
    study_id = _study_with(factory, slices[:20])
    with factory.begin() as session:
        add_instances(session, session.get(Study, study_id), slices[20:], T0 + timedelta(seconds=50))
    assert complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=70)) == []
    assert complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=110)) == [study_id]


def test_selection_over_stored_rows_matches_selection_over_datasets(db_url: str) -> None:
    """Tags survive the JSON column (both backends), NaN-as-text included."""
    factory = session_factory(db_url)
    thick, thin, scout = (
        ct_series(n=40, series_number=2, slice_mm=2.5),
        ct_series(n=40, series_number=3),
        ct_series(n=2, series_number=1),
    )
    for ds in scout:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    with pytest.warns(UserWarning):
        thick[3].RescaleSlope = "NaN"
    study_id = _study_with(factory, scout + thick + thin)
    with factory() as session:
        stored = study_instances(session, study_id)
        rows = {r.sop_key: r.id for r in session.scalars(select(Instance).where(Instance.study_id == study_id))}
    assert [t.tags for t in stored] == [t.tags for t in to_tags(scout + thick + thin)]
    choice = select_series(stored)
    assert isinstance(choice, Selection) and choice.series_key == series_key(thin[0])
    assert choice.instance_ids == tuple(rows[PSEUDO.uid(ds.SOPInstanceUID)] for ds in thin)
    with factory() as session:
        only_bad = [t for t in study_instances(session, study_id) if t.series_key != series_key(thin[0])]
    reason = select_series(only_bad)
    assert isinstance(reason, NotEligible)
    assert (
        reason.reason == "CT series 1: localizer (ImageType LOCALIZER); CT series 2: RescaleSlope is NaN (instance 4)"
    )


def test_late_instance_opens_a_new_version_whose_job_alone_runs(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    settings = settings_factory(stable_seconds=60, lease_seconds=5, heartbeat_seconds=1)
    slices = ct_series(n=41)
    study_id = _study_with(factory, slices[:40])
    complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=61))
    with factory.begin() as session:  # the first version went on through de-identification
        first = session.scalars(select(Job).where(Job.study_id == study_id)).one()
        transition(session, first, JobState.DEIDENTIFIED)
        transition(session, first, JobState.QUEUED)
        first_id = first.id

    t1 = T0 + timedelta(minutes=10)
    with factory.begin() as session:  # … when one more slice arrived
        late_instance(session, session.get(Study, study_id), slices[40], t1)
    old, new = _jobs(factory, study_id)
    assert (old.id, old.state, new.state, new.study_version) == (first_id, "superseded", "received", 2)

    assert complete_stable_studies(factory, settings, now=t1 + timedelta(seconds=30)) == []
    assert complete_stable_studies(factory, settings, now=t1 + timedelta(seconds=60)) == [study_id]
    with factory.begin() as session:
        job = session.get(Job, new.id)
        assert job is not None and job.state == "complete"
        assert len(study_instances(session, study_id)) == 41
        transition(session, job, JobState.DEIDENTIFIED)
        transition(session, job, JobState.QUEUED)

    ran: list[tuple[int, int]] = []
    worker = Worker(settings, factory, lambda c: ran.append((c.job_id, c.study_version)), worker_id="w")
    assert worker.run_once() is True
    assert worker.run_once() is False
    assert ran == [(new.id, 2)]
    assert [j.state for j in _jobs(factory, study_id)] == ["superseded", "results_built"]


def test_job_superseded_while_running_cannot_complete(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    factory = session_factory(db_url)
    settings = settings_factory(stable_seconds=60)
    slices = ct_series(n=41)
    study_id = _study_with(factory, slices[:40])
    complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=61))
    with factory.begin() as session:
        job = session.scalars(select(Job).where(Job.study_id == study_id)).one()
        transition(session, job, JobState.DEIDENTIFIED)
        transition(session, job, JobState.QUEUED)
    claimed = queue.claim(factory, "w1", 30)
    assert claimed is not None
    with factory.begin() as session:
        late_instance(session, session.get(Study, study_id), slices[40], T0 + timedelta(minutes=5))
    assert queue.heartbeat(factory, claimed.job_id, "w1", 30) is False
    assert queue.complete(factory, claimed.job_id, "w1") is False
    assert queue.fail(factory, claimed.job_id, "w1", "x", True, 3) is None
    assert [j.state for j in _jobs(factory, study_id)] == ["superseded", "received"]


def test_instance_arriving_during_completion_keeps_the_study_open(db_url: str, settings_factory) -> None:  # type: ignore[no-untyped-def]
    """The receiver holds the study (row lock on PostgreSQL, write lock on SQLite) while it adds
    an instance: completion must skip or wait, then see the new arrival, never complete over it."""
    factory = session_factory(db_url)
    settings = settings_factory(stable_seconds=60)
    study_id = _study_with(factory, ct_series(n=40))
    late_at = T0 + timedelta(seconds=100)
    locked, release = threading.Event(), threading.Event()

    def receiver() -> None:
        with factory.begin() as session:
            begin_write(session)
            study = session.scalars(select(Study).where(Study.id == study_id).with_for_update()).one()
            locked.set()
            release.wait(10)
            study.last_received_at = late_at

    thread = threading.Thread(target=receiver)
    thread.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()
    assert complete_stable_studies(factory, settings, now=T0 + timedelta(seconds=120)) == []
    thread.join(10)
    assert _jobs(factory, study_id)[0].state == "received"
    assert complete_stable_studies(factory, settings, now=late_at + timedelta(seconds=60)) == [study_id]
