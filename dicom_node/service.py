"""`pulmonode serve`: the node's long-running parts in one process.

SCP (receive) → assembler loop (assemble, de-identify, queue) → worker(s) (AI, results) →
delivery sender (PACS, EHR) → API. Each part is a thread with a shared stop event; the SCP is
pynetdicom's own threaded server.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Settings
from dicom_node.db.migrate import upgrade
from dicom_node.db.session import make_engine, make_sessionmaker

log = logging.getLogger(__name__)
LOOP_SECONDS = 0.5


@dataclass
class Node:
    """A running node; ``stop()`` shuts every part down and waits for the threads."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=_logged(name, target), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        for close in reversed(self.closers):
            close()
        for thread in self.threads:
            thread.join(timeout=30)
        self.engine.dispose()


def start_node(settings: Settings, *, scp: bool = True, workers: bool = True, api: bool = True,
               sender: bool = True) -> Node:
    """Migrate the database, then start the requested parts."""
    for directory in (settings.data_dir, settings.spool_dir, settings.deid_dir, settings.results_dir):
        directory.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    node = Node(settings, engine, make_sessionmaker(engine))
    if scp:
        _start_scp(node)
    if workers:
        _start_workers(node)
    if sender:
        _start_sender(node)
    if api:
        _start_api(node)
    return node


def serve(settings: Settings, **parts: bool) -> int:
    """Run until SIGINT/SIGTERM."""
    node = start_node(settings, **parts)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    log.info("pulmonode %s listening: DICOM %s:%d (AE %s), HTTP %s:%d", "serve",
             settings.dicom_host, settings.dicom_port, settings.ae_title, settings.http_host, settings.http_port)
    done.wait()
    log.info("shutting down")
    node.stop()
    return 0


def _start_scp(node: Node) -> None:
    from dicom_node.receive.recovery import recover
    from dicom_node.receive.scp import start_scp

    recover(node.settings, node.session_factory)  # temp files a crash left behind: never acknowledged
    server = start_scp(node.settings, node.session_factory)
    node.closers.append(server.shutdown)


def _start_workers(node: Node) -> None:
    from dicom_node.jobs.worker import Worker
    from dicom_node.pipeline import Pipeline

    pipeline = Pipeline(node.settings, node.session_factory)
    node.spawn("assembler", lambda: _every(node.stop_event, pipeline.assemble))
    for i in range(node.settings.workers):
        worker = Worker(node.settings, node.session_factory, process=pipeline.analyse)
        node.spawn(f"worker-{i}", lambda w=worker: w.run_forever(node.stop_event))


def _start_sender(node: Node) -> None:
    from dicom_node.deliver.sender import DeliverySender

    sender = DeliverySender(node.settings, node.session_factory,
                            lease_seconds=node.settings.delivery_lease_seconds,
                            timeout_seconds=node.settings.delivery_timeout_seconds,
                            poll_seconds=0.25)  # results wait at most this long for the sender
    node.spawn("sender", lambda: sender.run_forever(node.stop_event))


def _start_api(node: Node) -> None:
    import uvicorn

    from dicom_node.api.app import create_app

    app = create_app(node.settings, node.session_factory)
    config = uvicorn.Config(app, host=node.settings.http_host, port=node.settings.http_port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # serve() owns signals
    node.spawn("api", server.run)
    node.closers.append(lambda: setattr(server, "should_exit", True))


def _every(stop: threading.Event, step: Callable[[], object]) -> None:
    while not stop.is_set():
        try:
            step()
        except Exception:  # a bad study must not stop the loop; the step audits its own failure
            log.exception("assembler step failed")
        stop.wait(LOOP_SECONDS)


def _logged(name: str, target: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            target()
        except Exception:
            log.exception("%s stopped with an error", name)

    return run
