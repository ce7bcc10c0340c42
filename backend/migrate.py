"""Alembic migrations driven from code: :func:`upgrade` and :func:`downgrade` for a database URL.

The Alembic configuration is built here (no ``alembic.ini``), with ``script_location`` pointing at
``backend/migrations``. The app calls :func:`upgrade` at startup for the embedded SQLite database;
``regioncard backend migrate`` does it for PostgreSQL; tests go up, down and up again.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply migrations up to ``revision`` (every branch head by default)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``"base"`` removes every table)."""
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> set[str]:
    """Revisions the database is at."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
