"""A worker: claims a job, runs ``process`` on it while a thread renews the lease, and records
the outcome. Expired leases of dead workers are put back on every loop.

``process(claimed)`` does the work. It may return a ``finish(session, job)`` callable, which runs
in the transaction that moves the job to RESULTS_BUILT (so result and outbox rows commit with
that state change), or None. It raises ``RetryableJobError`` / ``PermanentJobError`` to say how a
failure should be treated; any other exception is logged and retried (bounded by max_attempts).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable

from dicom_node.config import Settings
from dicom_node.jobs import queue
from dicom_node.jobs.errors import PermanentJobError, RetryableJobError
from dicom_node.jobs.queue import DEFAULT_BACKOFF, Backoff, ClaimedJob, Finish, SessionFactory
from dicom_node.jobs.states import JobState

log = logging.getLogger(__name__)

Process = Callable[[ClaimedJob], Finish | None]


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        session_factory: SessionFactory,
        process: Process,
        worker_id: str | None = None,
        *,
        states: Iterable[JobState] = (JobState.QUEUED,),
        done_state: JobState = JobState.RESULTS_BUILT,
        backoff: Backoff = DEFAULT_BACKOFF,
        idle_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.process = process
        self.worker_id = worker_id or default_worker_id()
        self.states = tuple(states)
        self.done_state = done_state
        self.backoff = backoff
        self.idle_seconds = idle_seconds

    def run_once(self) -> bool:
        """Put back expired leases, then claim and run one job; False when none was due."""
        queue.requeue_expired(self.session_factory, max_attempts=self.settings.max_attempts)
        claimed = queue.claim(self.session_factory, self.worker_id, self.settings.lease_seconds, self.states)
        if claimed is None:
            return False
        self._run(claimed)
        return True

    def run_forever(self, stop_event: threading.Event) -> None:
        """Loop until ``stop_event`` is set; a database error is logged and the loop goes on."""
        while not stop_event.is_set():
            try:
                busy = self.run_once()
            except Exception:  # the database may be restarting: keep the worker alive
                log.exception("worker %s: queue error", self.worker_id)
                busy = False
            if not busy:
                stop_event.wait(self.idle_seconds)

    def _run(self, claimed: ClaimedJob) -> None:
        with _Heartbeat(self, claimed.job_id):
            try:
                finish = self.process(claimed)
                if finish is not None and not callable(finish):
                    raise PermanentJobError(f"process returned a {type(finish).__name__}, not a finish callable")
                done = queue.complete(self.session_factory, claimed.job_id, self.worker_id, self.done_state, finish)
            except PermanentJobError as exc:
                self._fail(claimed, exc, retryable=False)
                return
            except RetryableJobError as exc:
                self._fail(claimed, exc, retryable=True)
                return
            except Exception as exc:
                log.exception("job %s: unexpected error, will retry", claimed.job_id)
                self._fail(claimed, exc, retryable=True)
                return
        if not done:
            log.warning("job %s: lease lost before completion; result discarded", claimed.job_id)

    def _fail(self, claimed: ClaimedJob, exc: Exception, retryable: bool) -> None:
        state = queue.fail(
            self.session_factory,
            claimed.job_id,
            self.worker_id,
            f"{type(exc).__name__}: {exc}",
            retryable,
            self.settings.max_attempts,
            self.backoff,
        )
        log.info("job %s attempt %s failed (%s) → %s", claimed.job_id, claimed.attempts, type(exc).__name__, state)


class _Heartbeat:
    """Renews the lease every heartbeat_seconds (at most a third of the lease) until closed."""

    def __init__(self, worker: Worker, job_id: int) -> None:
        self.worker = worker
        self.job_id = job_id
        self.stop = threading.Event()
        self.lost = threading.Event()
        lease = worker.settings.lease_seconds
        self.interval_s = min(worker.settings.heartbeat_seconds, lease / 3)
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        w = self.worker
        while not self.stop.wait(self.interval_s):
            try:
                held = queue.heartbeat(w.session_factory, self.job_id, w.worker_id, w.settings.lease_seconds)
            except Exception:  # a missed beat is not fatal; the lease is longer than the interval
                log.exception("job %s: heartbeat failed", self.job_id)
                continue
            if not held:
                self.lost.set()
                log.warning("job %s: lease lost (taken over or superseded)", self.job_id)
                return
