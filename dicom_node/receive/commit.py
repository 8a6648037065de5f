"""Group commit: one writer thread per SCP process commits the index rows of whatever instances
are waiting, in one transaction, then releases every association waiting on it (cf. PostgreSQL's
and InnoDB's group commit). The files are already durable (the associations' own threads wrote,
renamed and fsync'ed them in parallel); only the serialized part — decide, insert, commit — is
shared. A group waits up to GATHER_S for instances other associations are still writing, so
one commit (one WAL fsync, one pass of ORM overhead) serves several; a lone association never
waits. With SQLite the groups of several SCP processes take turns under a file lock.
"""

from __future__ import annotations

import fcntl
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import ContextManager

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.db.session import is_sqlite
from dicom_node.receive.errors import DatabaseUnavailable
from dicom_node.receive.index import Incoming, Indexed, index_group
from dicom_node.receive.spool import HeldFile, Spool

MAX_GROUP = 64
GATHER_S = 0.003  # how long a group waits for instances other associations are about to submit
ATTEMPTS = 4  # PostgreSQL: a unique-key race with another process is retried with fresh reads


@dataclass
class Pending:
    incoming: Incoming
    held: HeldFile
    done: threading.Event = field(default_factory=threading.Event)
    result: Indexed | None = None
    error: BaseException | None = None


class GroupCommitter:
    def __init__(self, sessions: sessionmaker[Session], spool: Spool, lock_path: Path) -> None:
        self.sessions = sessions
        self.spool = spool
        sqlite = is_sqlite(sessions.kw["bind"])
        self.write_lock: ContextManager[None] = SqliteWriteLock(lock_path) if sqlite else nullcontext()
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()  # None: stop
        self._arriving = 0  # associations between receiving a dataset and submitting it
        self._arriving_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pulmonode-commit", daemon=True)
        self._thread.start()

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Wrap the work before ``submit`` so a group can wait for instances on their way."""
        with self._arriving_lock:
            self._arriving += 1
        try:
            yield
        finally:
            with self._arriving_lock:
                self._arriving -= 1

    def submit(self, incoming: Incoming, held: HeldFile) -> Indexed:
        """Index ``held`` and return once that is committed (or raise why it is not)."""
        pending = Pending(incoming, held)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def close(self) -> None:
        """Stop the writer thread once the instances already submitted are committed."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            group = self._gather()
            stop = None in group
            group = [p for p in group if p is not None]
            if group:
                self._commit(group)
            if stop:
                return

    def _gather(self) -> list[Pending | None]:
        """The first waiting instance, everything queued behind it, and — for up to GATHER_S —
        those other associations are still writing: one commit then serves them all."""
        group = [self._queue.get()]
        deadline = time.monotonic() + GATHER_S
        while group[-1] is not None and len(group) < MAX_GROUP:
            if not self._queue.empty():
                group.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if self._arriving == 0 or remaining <= 0:
                break
            try:
                group.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return group

    def _commit(self, group: list[Pending]) -> None:
        try:
            results = self._index_with_retries(group)
        except BaseException as exc:  # every waiter must hear about it, whatever it is
            if len(group) > 1:  # one bad instance must not fail the others: each on its own
                for pending in group:
                    self._commit([pending])
                return
            group[0].error = exc
            group[0].done.set()
            return
        for pending, result in zip(group, results):
            pending.result = result
            pending.done.set()

    def _index_with_retries(self, group: list[Pending]) -> list[Indexed]:
        for attempt in range(ATTEMPTS):
            try:
                with self.write_lock, self.sessions.begin() as session:
                    results = index_group(session, self.spool, [(p.incoming, p.held) for p in group])
                    self.spool.sync()  # directory entries durable before the rows that name them
                return results
            except IntegrityError:
                if attempt == ATTEMPTS - 1:
                    raise DatabaseUnavailable("database write kept conflicting") from None
            except SQLAlchemyError as exc:
                raise DatabaseUnavailable(f"database unavailable ({type(exc).__name__})") from None
        raise AssertionError("unreachable")


class SqliteWriteLock:
    """SQLite has one writer: serialize our groups across processes (flock on a file beside the
    spool), so WAL + busy timeout only have to absorb other writers. One committer thread per
    process holds it, so no thread lock is needed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a+b")  # noqa: SIM115 - held for the process's lifetime

    def __enter__(self) -> None:
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
