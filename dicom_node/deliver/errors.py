"""Delivery errors: retry later, or give up (dead letter) until an operator replays the row.

    DeliveryError
    ├── RetryableDeliveryError   transient: backoff and try again (peer down, busy, timeout)
    └── PermanentDeliveryError   the peer refuses this for good: the row goes dead, audited

The classification tables below are the only place that decides which is which.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """One result could not be delivered to one destination."""


class RetryableDeliveryError(DeliveryError):
    """Transient: the outbox tries again after a backoff."""


class PermanentDeliveryError(DeliveryError):
    """The destination refuses this result; retrying unchanged cannot help."""


# C-STORE status (PS3.4 Annex B.2.3, PS3.7 Annex C): success and warnings mean stored.
DIMSE_SUCCESS_MASKS = ((0xFFFF, 0x0000), (0xF000, 0xB000))  # 0x0000; 0xB000, 0xB006, 0xB007
DIMSE_RETRYABLE = ((0xFF00, 0xA700), (0xFFFF, 0x0213), (0xFFFF, 0xFE00))  # out of resources, resource limitation, cancel
# everything else is permanent: 0xA9xx (data set does not match SOP class), 0xCxxx (cannot
# understand), 0x0122 (SOP class not supported), 0x0124 (not authorised), 0x0117, 0x0211, …

# A-ASSOCIATE-RJ Result (PS3.8 9.3.4): 1 rejected-permanent, 2 rejected-transient.
ASSOCIATION_REJECTED_PERMANENT = 0x01

# HTTP: request timeout, too many requests and server errors are worth another try.
HTTP_RETRYABLE = frozenset({408, 425, 429})


def _matches(status: int, table: tuple[tuple[int, int], ...]) -> bool:
    return any(status & mask == value for mask, value in table)


def dimse_status_error(status: int, what: str) -> DeliveryError | None:
    """None when ``status`` means stored (success or warning), else the error to record."""
    if _matches(status, DIMSE_SUCCESS_MASKS):
        return None
    message = f"{what}: C-STORE status 0x{status:04X}"
    if _matches(status, DIMSE_RETRYABLE):
        return RetryableDeliveryError(message)
    return PermanentDeliveryError(message)


def association_rejected_error(result: int, source: int, reason: int, where: str) -> DeliveryError:
    message = f"association rejected by {where} (result {result}, source {source}, reason {reason})"
    if result == ASSOCIATION_REJECTED_PERMANENT:
        return PermanentDeliveryError(message + ": rejected-permanent")
    return RetryableDeliveryError(message + ": rejected-transient")


def http_status_error(status: int, reason: str, where: str) -> DeliveryError | None:
    """None for 2xx; 408/425/429/5xx retry; any other status is permanent (4xx, unexpected 3xx)."""
    if 200 <= status < 300:
        return None
    message = f"{where}: HTTP {status} {reason}".rstrip()
    if status >= 500 or status in HTTP_RETRYABLE:
        return RetryableDeliveryError(message)
    return PermanentDeliveryError(message)
