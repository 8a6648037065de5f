"""Fixtures: a running SCP (in this process) on a free port, over the test's database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Settings
from dicom_node.db.models import AuditEvent, Instance, QuarantinedInstance
from dicom_node.db.session import make_engine, make_sessionmaker
from dicom_node.receive.scp import ScpHandle, start_scp


@dataclass
class RunningScp:
    handle: ScpHandle
    settings: Settings
    sessions: sessionmaker[Session]

    @property
    def port(self) -> int:
        return self.handle.port

    def instances(self) -> list[Instance]:
        with self.sessions() as s:
            return list(s.scalars(select(Instance).order_by(Instance.id)))

    def quarantined(self) -> list[QuarantinedInstance]:
        with self.sessions() as s:
            return list(s.scalars(select(QuarantinedInstance).order_by(QuarantinedInstance.id)))

    def audit(self) -> list[AuditEvent]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))

    def path(self, relative: str) -> Path:
        return self.settings.data_dir / relative


@pytest.fixture
def scp_factory(settings_factory) -> Iterator[Callable[..., RunningScp]]:
    """``scp_factory(db_url, **settings_overrides)`` → a running SCP, stopped after the test."""
    running: list[tuple[RunningScp, object]] = []

    def start(db_url: str, **overrides) -> RunningScp:  # type: ignore[no-untyped-def]
        settings = settings_factory(database_url=db_url, **overrides)
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        scp = RunningScp(start_scp(settings, sessions), settings, sessions)
        running.append((scp, engine))
        return scp

    yield start
    for scp, engine in running:
        scp.handle.shutdown()
        engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from dicom_node.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'receive.db'}"
    upgrade(url)
    return url
