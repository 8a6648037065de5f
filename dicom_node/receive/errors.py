"""Errors of the receiver and the one table that maps them to C-STORE statuses (PS3.4 B.2.3).

    ReceiveError
     ├── InvalidDataset                  permanent: the sender must fix the data
     │    ├── CannotUnderstand           0xC000-0xCFFF  the dataset cannot be read or keyed
     │    │    ├── UnparseableDataset    0xC000
     │    │    ├── InvalidUID            0xC001
     │    │    └── SequenceTooDeep       0xC002
     │    └── DoesNotMatchSOPClass       0xA900-0xA9FF  readable, but not a valid instance
     │         ├── MissingAttribute      0xA900
     │         ├── UIDMismatch           0xA901  command UIDs ≠ dataset UIDs
     │         └── PixelDataInconsistent 0xA902
     └── OutOfResources                  0xA700  transient: the sender should retry later
          ├── DiskBelowWatermark
          └── DatabaseUnavailable

Messages name the attribute (keyword) but never echo its value: values may be PHI.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.tag import Tag

ERROR_COMMENT_MAX = 64  # (0000,0902) Error Comment is LO: at most 64 characters


class ReceiveError(Exception):
    """Base of the receiver's errors; ``keyword`` names the offending attribute, if any."""

    def __init__(self, message: str, keyword: str | None = None) -> None:
        super().__init__(message)
        self.keyword = keyword


class InvalidDataset(ReceiveError, ValueError):
    """The instance itself is wrong; re-sending it unchanged will fail again."""


class CannotUnderstand(InvalidDataset):
    pass


class UnparseableDataset(CannotUnderstand):
    pass


class InvalidUID(CannotUnderstand):
    pass


class SequenceTooDeep(CannotUnderstand):
    pass


class DoesNotMatchSOPClass(InvalidDataset):
    pass


class MissingAttribute(DoesNotMatchSOPClass):
    pass


class UIDMismatch(DoesNotMatchSOPClass):
    pass


class PixelDataInconsistent(DoesNotMatchSOPClass):
    pass


class OutOfResources(ReceiveError, OSError):
    """We cannot hold the instance durably right now; the sender should retry."""


class DiskBelowWatermark(OutOfResources):
    pass


class DatabaseUnavailable(OutOfResources):
    pass


# Most specific class first: the first isinstance match wins.
STATUS_FOR_ERROR: tuple[tuple[type[ReceiveError], int], ...] = (
    (UnparseableDataset, 0xC000),
    (InvalidUID, 0xC001),
    (SequenceTooDeep, 0xC002),
    (CannotUnderstand, 0xC000),
    (MissingAttribute, 0xA900),
    (UIDMismatch, 0xA901),
    (PixelDataInconsistent, 0xA902),
    (DoesNotMatchSOPClass, 0xA900),
    (OutOfResources, 0xA700),
)
UNEXPECTED_ERROR_STATUS = 0xA700  # a bug or an I/O fault on our side: the data is not held


def status_for(error: Exception) -> int:
    for cls, status in STATUS_FOR_ERROR:
        if isinstance(error, cls):
            return status
    return UNEXPECTED_ERROR_STATUS


def status_dataset(error: Exception) -> Dataset:
    """The C-STORE-RSP status elements for ``error``: Status, Error Comment, Offending Element."""
    rsp = Dataset()
    rsp.Status = status_for(error)
    message = str(error) if isinstance(error, ReceiveError) else "internal error"
    rsp.ErrorComment = message[:ERROR_COMMENT_MAX]
    keyword = getattr(error, "keyword", None)
    if keyword and rsp.Status != 0xA700:
        try:
            rsp.OffendingElement = [Tag(keyword)]
        except ValueError:
            pass  # not a dictionary keyword (e.g. a command element's description)
    return rsp
