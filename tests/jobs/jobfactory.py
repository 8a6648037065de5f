"""Test factories for the queue: studies with jobs in a chosen state, engines per test."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from dicom_node.db.models import Job, Study
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.jobs.lifecycle import open_job, transition
from dicom_node.jobs.states import JobState

# the path the pipeline takes from RECEIVED to each state, for putting a job there legally
PATH_TO: dict[JobState, tuple[JobState, ...]] = {
    JobState.RECEIVED: (),
    JobState.COMPLETE: (JobState.COMPLETE,),
    JobState.DEIDENTIFIED: (JobState.COMPLETE, JobState.DEIDENTIFIED),
    JobState.QUEUED: (JobState.COMPLETE, JobState.DEIDENTIFIED, JobState.QUEUED),
    JobState.RUNNING: (JobState.COMPLETE, JobState.DEIDENTIFIED, JobState.QUEUED, JobState.RUNNING),
    JobState.RESULTS_BUILT: (
        JobState.COMPLETE,
        JobState.DEIDENTIFIED,
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.RESULTS_BUILT,
    ),
    JobState.DELIVERED: (
        JobState.COMPLETE,
        JobState.DEIDENTIFIED,
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.RESULTS_BUILT,
        JobState.DELIVERED,
    ),
    JobState.NOT_ELIGIBLE: (JobState.COMPLETE, JobState.NOT_ELIGIBLE),
    JobState.QUARANTINED: (JobState.QUARANTINED,),
    JobState.FAILED: (JobState.COMPLETE, JobState.FAILED),
    JobState.SUPERSEDED: (JobState.SUPERSEDED,),
}


def session_factory(db_url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(db_url))


def new_job(session: Session, n: int, state: JobState = JobState.QUEUED) -> Job:
    """A study ``2.25.<n>`` with one job moved along the legal path to ``state``."""
    study = Study(study_key=f"2.25.{1000 + n}", patient_key=f"PNTEST{n:08d}")
    session.add(study)
    session.flush()
    job = open_job(session, study)
    for step in PATH_TO[state]:
        transition(session, job, step)
    return job


def queued_jobs(factory: sessionmaker[Session], count: int, state: JobState = JobState.QUEUED) -> list[int]:
    with factory.begin() as session:
        jobs = [new_job(session, i, state) for i in range(count)]
        session.flush()
        return [j.id for j in jobs]
