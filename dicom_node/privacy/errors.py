"""Errors of de-identification and re-identification. All are permanent: retrying cannot help.

    PrivacyError
    ├── DeidentificationError (ValueError)   an instance cannot be de-identified
    │   └── BurnedInRiskError                its pixels may carry burned-in PHI: quarantine it
    ├── NotDicomError (ValueError)           a file is not a DICOM Part 10 file
    ├── ReidentificationMapError (ValueError) a map's JSON is malformed
    └── VaultError                           a sealed map cannot be opened (wrong site key, corrupt)
"""

from __future__ import annotations


class PrivacyError(Exception):
    """Base of this package's errors."""


class DeidentificationError(PrivacyError, ValueError):
    pass


class BurnedInRiskError(DeidentificationError):
    pass


class NotDicomError(PrivacyError, ValueError):
    pass


class ReidentificationMapError(PrivacyError, ValueError):
    pass


class VaultError(PrivacyError):
    pass
