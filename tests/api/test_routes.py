"""The HTTP API over a real database: job listing, history, operator retry, delivery replay."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dicom_node.api.app import create_app
from dicom_node.db.models import AuditEvent, Delivery, Job, ResultObject, Study
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.jobs.states import JobState


@pytest.fixture
def api(db_url, settings_factory):
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    with factory() as s:
        study = Study(study_key="2.25.1234", patient_key="PNABC")
        failed = Job(study=study, state=JobState.FAILED.value, kind="ct", reason="inference crashed")
        done = Job(study=study, study_version=2, state=JobState.RESULTS_BUILT.value, kind="ct")
        s.add_all([study, failed, done])
        s.flush()
        result = ResultObject(job_id=done.id, kind="seg", path="results/x.dcm")
        s.add(result)
        s.flush()
        s.add(Delivery(job_id=done.id, result_id=result.id, destination="orthanc", channel="dimse", state="dead",
                       attempts=5, last_error="0xA900 dataset does not match SOP class"))
        s.commit()
    client = TestClient(create_app(settings_factory(database_url=db_url), factory))
    yield client, factory
    engine.dispose()


def test_jobs_list_and_filter(api) -> None:
    client, _ = api
    jobs = client.get("/api/jobs").json()
    assert {j["state"] for j in jobs} == {"failed", "results_built"}
    assert all(j["study_key"] == "2.25.1234" for j in jobs)
    assert [j["state"] for j in client.get("/api/jobs?state=failed").json()] == ["failed"]
    bad = client.get("/api/jobs?state=exploded")
    assert bad.status_code == 409 and "exploded" in bad.json()["reason"]


def test_retry_failed_job_is_audited_and_running_job_refused(api) -> None:
    client, factory = api
    with factory() as s:
        failed_id = s.scalars(select(Job.id).where(Job.state == "failed")).one()
        built_id = s.scalars(select(Job.id).where(Job.state == "results_built")).one()
    assert client.post(f"/api/jobs/{failed_id}/retry").json()["state"] == "queued"
    refused = client.post(f"/api/jobs/{built_id}/retry")
    assert refused.status_code == 409 and "only failed jobs" in refused.json()["reason"]
    with factory() as s:
        events = s.scalars(select(AuditEvent.event).where(AuditEvent.job_id == failed_id)).all()
    assert "JOB_QUEUED" in events
    assert client.get("/api/jobs/999999").status_code == 404


def test_dead_delivery_replay(api) -> None:
    client, factory = api
    dead = client.get("/api/deliveries?state=dead").json()
    assert len(dead) == 1 and "0xA900" in dead[0]["last_error"]
    replayed = client.post(f"/api/deliveries/{dead[0]['id']}/retry").json()
    assert replayed["state"] == "pending" and replayed["attempts"] == 0
    again = client.post(f"/api/deliveries/{dead[0]['id']}/retry")
    assert again.status_code == 409


def test_job_detail_and_missing_pdf(api) -> None:
    client, factory = api
    with factory() as s:
        built_id = s.scalars(select(Job.id).where(Job.state == "results_built")).one()
    detail = client.get(f"/api/jobs/{built_id}").json()
    assert detail["deliveries"][0]["state"] == "dead" and detail["results"][0]["kind"] == "seg"
    missing = client.get(f"/api/jobs/{built_id}/report.pdf")
    assert missing.status_code == 404 and "no PDF" in missing.json()["reason"]


def test_dashboard_page_served(api) -> None:
    client, _ = api
    page = client.get("/")
    assert page.status_code == 200 and "synthetic phantoms" in page.text
