"""Errors of the result builders.

    ResultsError (ValueError)     -- permanent: the inputs cannot make a valid object
    ├── SourceError               -- the source datasets are unusable (empty, mixed series, ...)
    └── FindingsError             -- findings disagree with the sources (mask shape, key slice, labels)
"""

from __future__ import annotations


class ResultsError(ValueError):
    """Inputs cannot be turned into a valid result object; retrying will not help."""


class SourceError(ResultsError):
    pass


class FindingsError(ResultsError):
    pass
