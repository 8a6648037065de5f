"""Start-up recovery of the spool after a crash, before the SCP accepts associations.

An acknowledgement follows the commit, so nothing a crash leaves behind was acknowledged:
- ``spool/tmp/*.part``: written, never placed → deleted;
- a placed file whose transaction never committed (the crash fell between rename and commit):
  only possible in the newest hour directories → moved to ``spool/unindexed/``, not deleted,
  so that a database pointed at by mistake cannot make us drop data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Settings
from dicom_node.db.models import Instance
from dicom_node.receive.spool import TEMP_DIR, Spool, fsync_dir

log = logging.getLogger(__name__)

RECENT_HOUR_DIRS = 2  # a crash can only interrupt the hour being written (and the one before)
UNINDEXED_DIR = "unindexed"
QUERY_CHUNK = 500


@dataclass(frozen=True)
class Recovered:
    temp_files_removed: int
    unindexed_files_moved: int


def recover(settings: Settings, sessions: sessionmaker[Session]) -> Recovered:
    spool = Spool(settings.data_dir, settings.spool_dir, settings.quarantine_dir)
    removed = spool.sweep_temp()
    orphans = unindexed_files(spool, sessions)
    if orphans:
        target = settings.spool_dir / UNINDEXED_DIR
        target.mkdir(exist_ok=True)
        for path in orphans:
            path.rename(target / path.name)
        fsync_dir(target)
        log.warning("spool recovery: moved %d never-committed files to %s", len(orphans), target)
    return Recovered(removed, len(orphans))


def unindexed_files(spool: Spool, sessions: sessionmaker[Session]) -> list[Path]:
    """Files in the newest hour directories that no Instance row names."""
    hours = sorted(p for p in spool.spool_dir.iterdir() if p.is_dir() and p.name not in (TEMP_DIR, UNINDEXED_DIR))
    files = {spool.relative(f): f for d in hours[-RECENT_HOUR_DIRS:] for f in d.glob("*.dcm")}
    names = list(files)
    known: set[str] = set()
    with sessions() as session:
        for i in range(0, len(names), QUERY_CHUNK):
            chunk = names[i:i + QUERY_CHUNK]
            known.update(session.scalars(select(Instance.spool_path).where(Instance.spool_path.in_(chunk))))
    return [files[name] for name in names if name not in known]
