"""Database plumbing shared by every backend domain: the declarative base, engines, sessions.

SQLite is the embedded default (WAL, foreign keys on, ``synchronous=FULL`` so an accepted upload
is on disk before the answer); PostgreSQL is the production database and runs in the tests.
Constraint names follow one convention so that Alembic migrations are stable on both.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from backend.errors import InvalidRequest

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM model; one metadata for the whole backend (and for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


SQLITE_PAGE_SIZE = 16384


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Takes effect only on a new, empty database (then fixed): 16 KiB pages make the bulk
    # inserts of the validation loop ~15 % cheaper than the default 4 KiB (measured).
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_private(path: Path) -> None:
    """Mode 0600 for a SQLite database file and its WAL and shared-memory files (they hold
    personal data: card pseudonyms, holders, taps)."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if candidate.stat().st_mode & 0o077:
                os.chmod(candidate, 0o600)


class NulInText(InvalidRequest):
    """A text value holds a NUL character: PostgreSQL cannot store it (it was a 500)."""


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, executemany: bool
) -> None:
    # Single statements only (the API's): the validation loop's bulk inserts carry checked
    # record fields and must not pay a scan per value.
    if not executemany and _has_nul(parameters):
        raise NulInText(
            "caractère nul (0x00) interdit dans un texte",
            "NUL character (0x00) not allowed in text",
        )


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the project's settings for SQLite or PostgreSQL.

    On both, a text parameter holding a NUL character is refused before it reaches the driver
    (:class:`NulInText`, a 422): PostgreSQL cannot store one, and the same input must be refused
    the same way on either database (found by the API fuzzer).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            # After the pragmas (journal_mode=WAL creates the file): no extra statement.
            event.listen(engine, "connect", lambda *_: make_private(path))
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


class SQLiteCheckpointer:
    """Copies the SQLite WAL into the database file from a thread, while a bulk writer works.

    A bulk writer (the validation loop) otherwise pays for the automatic checkpoints inside
    its own commits. Here a thread with its own connection runs ``PRAGMA
    wal_checkpoint(PASSIVE)`` every ``period_s``: SQLite runs it without Python's GIL, on the
    other core, and a passive checkpoint never blocks readers or writers (the SQLite
    documentation recommends this for write-heavy work). The writer turns its own automatic
    checkpoints off (``PRAGMA wal_autocheckpoint=0``) while the thread runs.

    :meth:`keep_alive` starts the thread if needed; it stops by itself, after a last
    checkpoint, once ``idle_s`` passed without a call, so nothing has to be closed.

    Args:
        engine: a SQLite engine on a database file (anything else: :attr:`usable` is False).
        period_s: time between two checkpoints.
        idle_s: the thread stops after this long without :meth:`keep_alive`.
    """

    def __init__(self, engine: Engine, period_s: float = 0.05, idle_s: float = 2.0) -> None:
        """See the class docstring."""
        path = engine.url.database if engine.dialect.name == "sqlite" else None
        memory = not path or path == ":memory:" or engine.url.query.get("mode") == "memory"
        self.path = None if memory else path
        self.period_s = period_s
        self.idle_s = idle_s
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_call = 0.0

    @property
    def usable(self) -> bool:
        """Whether there is a database file to checkpoint."""
        return self.path is not None

    def keep_alive(self) -> bool:
        """Start the thread, or keep it running; ``True`` when it runs."""
        if self.path is None:
            return False
        with self._guard:
            self._last_call = time.monotonic()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, args=(self.path,), name="sqlite-checkpoint", daemon=True
                )
                self._thread.start()
        return True

    def wait_stopped(self) -> None:
        """Block until the thread has stopped (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self, path: str) -> None:
        connection = sqlite3.connect(path, timeout=10, check_same_thread=False)
        try:
            while True:
                time.sleep(self.period_s)
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                with self._guard:
                    if time.monotonic() - self._last_call > self.idle_s:
                        self._thread = None
                        return
        finally:
            connection.close()
