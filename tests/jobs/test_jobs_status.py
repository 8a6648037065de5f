"""The queue summary behind `pulmonode status`."""

from __future__ import annotations

from datetime import timedelta

from dicom_node.db.models import Delivery, ResultObject, utcnow
from dicom_node.jobs import queue
from dicom_node.jobs.states import JobState
from dicom_node.jobs.status import format_summary, queue_summary
from tests.jobs.jobfactory import queued_jobs, session_factory


def test_summary_counts_states_ages_deliveries_and_failures(db_url: str) -> None:
    factory = session_factory(db_url)
    jobs = queued_jobs(factory, 4)
    queue.claim(factory, "w1", 30)
    queue.fail(factory, jobs[0], "w1", "corrupt pixel data in series 2", False, 3)
    queue.claim(factory, "w1", 30)  # jobs[1] stays running
    with factory.begin() as session:
        result = ResultObject(job_id=jobs[1], kind="sr", path="results/a.dcm")
        session.add(result)
        session.flush()
        for state in ("pending", "pending", "dead", "delivered"):
            session.add(Delivery(job_id=jobs[1], result_id=result.id, destination="pacs", channel="dimse", state=state))
    with factory() as session:
        summary = queue_summary(session, now=utcnow() + timedelta(seconds=100))
    assert summary["jobs"]["queued"] == 2 and summary["jobs"]["running"] == 1 and summary["jobs"]["failed"] == 1
    assert summary["jobs"]["received"] == 0 and set(summary["jobs"]) == {s.value for s in JobState}
    assert 100 <= summary["oldest_queued_age_seconds"] <= 130  # queued moments ago, looked at 100 s later
    assert summary["deliveries"] == {"pending": 2, "dead": 1, "delivered": 1}
    [failure] = summary["recent_failures"]
    assert (failure["job_id"], failure["study_key"], failure["reason"]) == (
        jobs[0],
        "2.25.1000",
        "corrupt pixel data in series 2",
    )

    text = format_summary(summary)
    assert "queued 2" in text and "running 1" in text and "oldest queued: 10" in text
    assert "deliveries: pending 2, dead 1, delivered 1" in text
    assert "job %d study 2.25.1000 v1: corrupt pixel data in series 2" % jobs[0] in text


def test_empty_queue_summary(db_url: str) -> None:
    factory = session_factory(db_url)
    with factory() as session:
        summary = queue_summary(session)
    assert summary["oldest_queued_age_seconds"] is None and summary["recent_failures"] == []
    assert sum(summary["jobs"].values()) == 0
    assert "jobs: none" in format_summary(summary) and "oldest queued: -" in format_summary(summary)
