"""Fixtures for delivery tests: a session factory on the test database, fresh DICOM files."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.db.session import make_engine, make_sessionmaker
from tests.helpers import write_study


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def study_files(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``study_files(n)``: n DICOM files of a fresh study (unique UIDs on every call)."""

    def make(n: int = 3) -> list[Path]:
        seed = random.randrange(10**5, 10**6)
        return write_study(tmp_path / f"study{seed}", seed=seed, shape=(n, 16, 16))

    return make
