"""STOW-RS (PS3.18 10.5, Store Transaction): send a batch of result files with dicomweb-client.

The PACS answers per instance: ReferencedSOPSequence (stored) and FailedSOPSequence with a
FailureReason (a C-STORE status), classified like DIMSE.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from dicom_node.config import DicomDestination
from dicom_node.deliver.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    dimse_status_error,
    http_status_error,
)


def store(paths: Sequence[Path], destination: DicomDestination, *, timeout_s: float = 30.0) -> list[DeliveryError | None]:
    """POST the files in one multipart request; returns, per file, None (stored) or why not."""
    if not destination.url:
        error = PermanentDeliveryError(f"destination {destination.name!r} is kind stow but has no url")
        return [error for _ in paths]
    datasets = [_read(path) for path in paths]
    readable = [ds for ds in datasets if isinstance(ds, pydicom.Dataset)]
    outcome = _post(readable, destination, timeout_s) if readable else PermanentDeliveryError("nothing readable")
    return [ds if isinstance(ds, DeliveryError) else _per_instance(ds, outcome, destination.url) for ds in datasets]


def _read(path: Path) -> pydicom.Dataset | DeliveryError:
    try:
        return pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        return PermanentDeliveryError(f"result file {path.name} is not a readable DICOM file: {exc}")


def _post(datasets: list[pydicom.Dataset], destination: DicomDestination, timeout_s: float) -> pydicom.Dataset | DeliveryError:
    session = requests.Session()
    if destination.username:
        session.auth = (destination.username, destination.password or "")
    client = DICOMwebClient(str(destination.url), session=session, timeout=timeout_s)
    client.set_http_retry_params(retry=False)  # the outbox retries, with backoff
    where = f"STOW-RS {destination.url}"
    try:
        return client.store_instances(datasets)
    except requests.HTTPError as exc:
        response = exc.response
        return http_status_error(response.status_code, response.reason or "", where) or RetryableDeliveryError(where)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return RetryableDeliveryError(f"{where}: {type(exc).__name__}")
    finally:
        session.close()


def _per_instance(ds: pydicom.Dataset, outcome: pydicom.Dataset | DeliveryError, url: str) -> DeliveryError | None:
    if isinstance(outcome, DeliveryError):
        return outcome
    uid = str(ds.SOPInstanceUID)
    for item in outcome.get("FailedSOPSequence", []):
        if str(item.get("ReferencedSOPInstanceUID", "")) == uid:
            reason = int(item.get("FailureReason", 0xC000))
            return dimse_status_error(reason, f"STOW-RS {url} instance")
    stored = {str(item.get("ReferencedSOPInstanceUID", "")) for item in outcome.get("ReferencedSOPSequence", [])}
    if stored and uid not in stored:
        return RetryableDeliveryError(f"STOW-RS {url}: instance missing from the response")
    return None
