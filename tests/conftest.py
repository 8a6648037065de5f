"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, settings, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("PULMONODE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(_libpq(PG_ADMIN_URL), connect_timeout=3):
            return True
    except Exception:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite in tmp_path, or a fresh PostgreSQL database.

    PostgreSQL runs on 127.0.0.1:5432 on every machine here, CI's included (.ci/run starts it);
    a missing server is a failure, not a skip."""
    from dicom_node.db.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pulmonode.db'}"
        upgrade(url)
        yield url
        return
    import psycopg

    name = "pn_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    try:
        yield url
    finally:
        from sqlalchemy import create_engine

        create_engine(url).dispose()
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings_factory(tmp_path: Path):
    """Build Settings for a test: demo key allowed, data under tmp_path, free ports."""
    from dicom_node.config import Settings

    def make(**overrides):  # type: ignore[no-untyped-def]
        values = dict(
            demo_mode=True,
            data_dir=tmp_path / "data",
            dicom_host="127.0.0.1",
            dicom_port=free_port(),
            http_port=free_port(),
            stable_seconds=1.0,
            min_free_disk_mb=1,
        )
        values.update(overrides)
        return Settings(**values)

    return make
