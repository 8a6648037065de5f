"""Alembic environment: runs migrations on the configured URL (online only)."""

from alembic import context

from dicom_node.db.models import Base
from dicom_node.db.session import make_engine

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
