"""The ORU^R01 over MLLP: the stored message text is sent as is (same MSH-10 on every resend)."""

from __future__ import annotations

from pathlib import Path

from dicom_node.config import HL7Destination
from dicom_node.deliver.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from hl7.errors import AckError
from hl7.mllp import AckOutcome
from hl7.mllp import send as mllp_send


def read_message(path: Path) -> str:
    """The stored ER7 text; bytes are read untranslated because segments end with a bare CR."""
    text = path.read_bytes().decode("utf-8")
    return text.replace("\r\n", "\r").replace("\n", "\r")


def send(path: Path, destination: HL7Destination) -> DeliveryError | None:
    """None when the EHR answered AA; Retryable for AE/timeout/lost ACK/refused; Permanent for AR."""
    try:
        message = read_message(path)
    except (OSError, UnicodeDecodeError) as exc:
        return PermanentDeliveryError(f"ORU file {path.name} unreadable: {exc}")
    try:
        result = mllp_send(message, destination.host, destination.port, destination.ack_timeout_seconds)
    except AckError as exc:  # our own stored text has no usable MSH: resending cannot help
        return PermanentDeliveryError(f"ORU file {path.name}: {exc}")
    where = f"MLLP {destination.name} {destination.host}:{destination.port}"
    if result.outcome is AckOutcome.DELIVERED:
        return None
    if result.outcome is AckOutcome.REJECTED:
        return PermanentDeliveryError(f"{where}: {result.detail}")
    return RetryableDeliveryError(f"{where}: {result.detail}")
