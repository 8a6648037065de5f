"""Persistence: typed models, Alembic migrations, engine and session factories."""
