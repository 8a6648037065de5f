"""The spool: received bytes made durable before we acknowledge them.

A file is written under ``spool/tmp/<uuid>.part`` and fsync'ed, then renamed into its place
(``spool/<UTC date and hour>/<uuid>.dcm``) and the directory fsync'ed, all in the association's
own thread; only then is its index row committed (``index``, ``commit``). A quarantined file
moves on to ``quarantine/<uuid>.dcm`` inside that transaction, its directory synced by
``sync()`` before the commit. Names are ours (uuid4), never derived from DICOM values. A
``.part`` file, or a placed file no row names, was never acknowledged (``recovery``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_DIR = "tmp"
TEMP_SUFFIX = ".part"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class HeldFile:
    """One received file on its way into place; ``path`` follows it as it moves."""

    path: Path
    sha256: str
    size_bytes: int
    name: str = field(default_factory=lambda: uuid.uuid4().hex)


class Spool:
    """The spool and quarantine directories under ``data_dir``."""

    def __init__(self, data_dir: Path, spool_dir: Path, quarantine_dir: Path) -> None:
        self.data_dir = data_dir
        self.spool_dir = spool_dir
        self.quarantine_dir = quarantine_dir
        self.temp_dir = spool_dir / TEMP_DIR
        self._known_dirs: set[Path] = set()
        self._unsynced_dirs: set[Path] = set()
        for directory in (self.spool_dir, self.temp_dir, self.quarantine_dir):
            self._ensure_dir(directory)

    def write_temp(self, data: bytes) -> HeldFile:
        """Write ``data`` to a new temp file and fsync it (not yet visible as received)."""
        held = HeldFile(path=Path(), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
        held.path = self.temp_dir / f"{held.name}{TEMP_SUFFIX}"
        fd = os.open(held.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return held

    def place(self, held: HeldFile) -> str:
        """Move ``held`` into the spool and fsync the directory, in the caller's thread (so the
        associations' fsyncs overlap, outside the serialized commit); returns the path relative
        to data_dir. Not yet received: that is the index row, committed after this."""
        hour = datetime.now(timezone.utc).strftime("%Y%m%dT%H")
        target = self.spool_dir / hour / f"{held.name}.dcm"
        self._ensure_dir(target.parent)
        os.rename(held.path, target)
        fsync_dir(target.parent)
        held.path = target
        return self.relative(target)

    def quarantine(self, held: HeldFile) -> str:
        return self._move(held, self.quarantine_dir / f"{held.name}.dcm")

    def discard(self, held: HeldFile) -> None:
        try:
            held.path.unlink()
        except FileNotFoundError:
            pass

    def sync(self) -> None:
        """Make the renames done since the last call durable (one fsync per directory)."""
        for directory in sorted(self._unsynced_dirs):
            fsync_dir(directory)
        self._unsynced_dirs.clear()

    def sweep_temp(self) -> int:
        """Delete never-acknowledged temp files left by a crash; returns how many."""
        removed = 0
        for part in self.temp_dir.glob(f"*{TEMP_SUFFIX}"):
            part.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("spool sweep: removed %d unacknowledged temp files", removed)
        return removed

    def relative(self, path: Path) -> str:
        return path.relative_to(self.data_dir).as_posix()

    def _move(self, held: HeldFile, target: Path) -> str:
        self._unsynced_dirs.add(target.parent)
        if held.path != target:  # already there when a failed transaction is retried
            self._ensure_dir(target.parent)
            os.rename(held.path, target)  # atomic within one file system
            held.path = target
        return self.relative(target)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            fsync_dir(directory.parent)  # the new directory entry itself must survive a crash
        self._known_dirs.add(directory)
