"""Errors of the hl7 package.

    HL7Error
    ├── OruBuildError (ValueError)    the inputs cannot make a valid ORU^R01 (names the field)
    └── AckError (ValueError)         an acknowledgement that is not a parseable HL7 ACK

Transport problems (refused connection, timeout, lost ACK) are not exceptions of this package:
``hl7.mllp.send`` reports them as an ``AckOutcome`` so the caller can retry.
"""

from __future__ import annotations


class HL7Error(Exception):
    """Base of this package's errors."""


class OruBuildError(HL7Error, ValueError):
    """The values given cannot make a valid ORU^R01 message."""


class AckError(HL7Error, ValueError):
    """An acknowledgement that cannot be parsed or lacks MSA."""
