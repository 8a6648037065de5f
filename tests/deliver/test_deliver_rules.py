"""The outbox's rules as tables: error classification, backoff, routing of results to channels."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from dicom_node.config import DicomDestination, HL7Destination
from dicom_node.db.models import Delivery, Job, ResultObject, Study
from dicom_node.deliver import enqueue, retry_dead
from dicom_node.deliver.errors import (
    PermanentDeliveryError,
    RetryableDeliveryError,
    association_rejected_error,
    dimse_status_error,
    http_status_error,
)
from dicom_node.deliver.sender import backoff_seconds


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x0000, None), (0xB000, None), (0xB006, None), (0xB007, None),
        (0xA700, RetryableDeliveryError), (0xA7FF, RetryableDeliveryError), (0x0213, RetryableDeliveryError),
        (0xA900, PermanentDeliveryError), (0xC000, PermanentDeliveryError), (0xCFFF, PermanentDeliveryError),
        (0x0122, PermanentDeliveryError), (0x0124, PermanentDeliveryError),
    ],
)
def test_dimse_status_classification(status: int, expected: type | None) -> None:
    error = dimse_status_error(status, "PACS x.dcm")
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected and f"0x{status:04X}" in str(error)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, None), (202, None), (408, RetryableDeliveryError), (429, RetryableDeliveryError),
     (500, RetryableDeliveryError), (503, RetryableDeliveryError), (400, PermanentDeliveryError),
     (401, PermanentDeliveryError), (404, PermanentDeliveryError), (409, PermanentDeliveryError)],
)
def test_http_status_classification(status: int, expected: type | None) -> None:
    error = http_status_error(status, "Reason", "STOW-RS http://pacs")
    assert (error is None) if expected is None else (type(error) is expected and f"HTTP {status}" in str(error))


def test_association_rejections() -> None:
    assert isinstance(association_rejected_error(1, 1, 7, "PACS"), PermanentDeliveryError)
    assert isinstance(association_rejected_error(2, 3, 2, "PACS"), RetryableDeliveryError)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempts in range(1, 30):
        ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
        delays = [backoff_seconds(attempts, 2.0, 60.0, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert max(backoff_seconds(40, 2.0, 60.0, rng) for _ in range(100)) <= 60.0


def test_enqueue_routes_dicom_to_every_pacs_and_the_oru_to_every_ehr(session_factory, settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(
        pacs=[DicomDestination(name="orthanc"), DicomDestination(name="web", kind="stow", url="http://h/dicom-web")],
        ehr=[HL7Destination(name="epic"), HL7Destination(name="lab", port=2576)],
    )
    with session_factory() as session, session.begin():
        job = Job(study=Study(study_key="k" * 64, patient_key="p" * 64), state="results_built")
        session.add(job)
        session.flush()
        results = [ResultObject(job_id=job.id, kind=k, path=f"results/{k}.{ext}") for k, ext in
                   (("seg", "dcm"), ("sr", "dcm"), ("pdf", "dcm"), ("oru", "hl7"))]
        created = enqueue(session, job, results, settings)
    assert len(created) == 3 * 2 + 2
    with session_factory() as session:
        got = {(r.result_id, r.destination, r.channel, r.state) for r in session.scalars(select(Delivery))}
    ids = {r.kind: r.id for r in results}
    expected = {(ids[k], "orthanc", "dimse", "pending") for k in ("seg", "sr", "pdf")}
    expected |= {(ids[k], "web", "stow", "pending") for k in ("seg", "sr", "pdf")}
    expected |= {(ids["oru"], "epic", "mllp", "pending"), (ids["oru"], "lab", "mllp", "pending")}
    assert got == expected
    assert retry_dead(session_factory) == 0  # nothing dead yet
