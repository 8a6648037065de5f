"""`pulmonode db upgrade`: Alembic migrations, run programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from dicom_node.db.session import make_engine  # creates the SQLite directory

    make_engine(url).dispose()
    command.upgrade(alembic_config(url), revision)
