"""Errors of the job queue and of the work a job does.

    JobError
    ├── RetryableJobError   a transient failure (peer down, disk busy): retried with backoff
    ├── PermanentJobError   retrying cannot help (corrupt input, unsupported data): FAILED now
    └── JobNotFound         (also a LookupError) no job with that id

A ``process`` function raises RetryableJobError or PermanentJobError to say which; the worker
treats any other exception as retryable, bounded by ``max_attempts``.
"""

from __future__ import annotations


class JobError(Exception):
    """Base of the job errors."""


class RetryableJobError(JobError):
    """The job may succeed if tried again later."""


class PermanentJobError(JobError):
    """The job cannot succeed as it stands; it goes to FAILED without retries."""


class JobNotFound(JobError, LookupError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id
