"""Worker processes for the multi-process tests (spawned: importable, module-level functions)."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from dicom_node.config import Settings
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.jobs.queue import ClaimedJob
from dicom_node.jobs.worker import Worker


def record(out_path: str, sleep_s: float, claimed: ClaimedJob) -> None:
    """Append the job id durably, then pretend to work."""
    with open(out_path, "a", encoding="ascii") as f:
        f.write(f"{claimed.job_id}\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(sleep_s)


def make_worker(db_url: str, worker_id: str, out_path: str, sleep_s: float, lease_s: float, data_dir: str) -> Worker:
    settings = Settings(
        demo_mode=True, data_dir=Path(data_dir), lease_seconds=lease_s, heartbeat_seconds=lease_s / 6, max_attempts=3
    )
    factory = make_sessionmaker(make_engine(db_url))
    return Worker(settings, factory, functools.partial(record, out_path, sleep_s), worker_id=worker_id)


def drain(db_url: str, worker_id: str, out_path: str, sleep_s: float, lease_s: float, data_dir: str, start) -> None:  # type: ignore[no-untyped-def]
    """Run jobs until none is left (two empty looks in a row), after the other workers are ready
    (``start``: a multiprocessing Barrier, or None)."""
    worker = make_worker(db_url, worker_id, out_path, sleep_s, lease_s, data_dir)
    if start is not None:
        start.wait(30)
    idle = 0
    while idle < 2:
        idle = 0 if worker.run_once() else idle + 1
        if idle:
            time.sleep(0.1)
