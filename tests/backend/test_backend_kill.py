"""The backend killed at EVERY database statement of an upload and of a validation-loop chunk.

Project rule: a backend restarted mid-upload refuses cleanly and no money, ride, meal or right is
lost or created, proven by injecting the fault at every step. Here a step is a database
statement and the fault is the backend process killed (``SIGKILL``: no ``finally``, no rollback
by Python, no pool cleanup; the database alone sees its client vanish), during:

(a) receiving one upload batch (``receive_batch``, with and without the upload worker's
    preparation: the ``vl_db`` parameters), and
(b) one validation-loop chunk (``ValidationLoop.run_once``) that writes taps, ledger lines,
    anomalies (new and resolved), a deny candidate, gaps (new and closed), card and terminal
    states (new and updated), ``processed_at`` and ``loop_state``,

on SQLite and on PostgreSQL.

How. The test builds the state just before the step and puts it back before each kill point
(:class:`StartingPoint`). ``os.fork()`` gives the backend: a child with its OWN engine, which
counts the statements it starts and kills itself just before statement ``n`` (``n`` = count + 1:
after its last statement, e.g. the COMMIT done but the ack not sent). A first run without a kill
counts the statements, so every ``n`` is covered; the counts are pinned below too, so that a
change is seen and reviewed.

What a statement is. Counted at the driver, not with SQLAlchemy's ``before_cursor_execute``: the
loop's bulk writes go straight to the driver (``executemany``, ``COPY``), which that event never
sees, and they are most of what a chunk writes.

- SQLite: the connection's trace callback, i.e. each statement SQLite itself starts: the
  connection's PRAGMAs, the implicit BEGIN, each row of an ``executemany``, the COMMIT.
- PostgreSQL (psycopg, patched in the child only): each call that sends SQL: ``execute``,
  ``executemany``, ``copy`` (before the COPY is sent), ``commit``, ``rollback``, plus one point
  inside each COPY (started on the server, rows handed over, not finished).

Not covered: a kill inside the COMMIT itself (its outcome is then unknown to the client); the
statements of the loop's SQLite checkpoint thread (its own connection, at times of its own).

After the kill the parent checks, at once, that the database holds the step whole or not at
all: its whole dump equals the state before the step or after an unkilled step, and it is the
latter exactly when the kill came after the step's COMMIT. (On PostgreSQL the dead client's
server session could still hold its uncommitted rows and locks: the parent reads under MVCC and
a write of the restarted backend would wait for the session to end. In practice it has always
gone already: the server sees the socket close at once.) Then a restarted backend finishes the
work: (a) the terminal sends the same bytes again (``accepted`` if they are absent,
``duplicate`` if stored: stored once either way) and a loop processes everything; (b) a new loop
(a new process: fresh memory) runs. The end state must equal, table by table, that of the run
without a kill (see :func:`dump` for what is compared).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import re
import select as select_fd
import shutil
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, Table, event, inspect, select, text
from sqlalchemy.pool import NullPool

from backend.db import make_engine, make_sessionmaker
from backend.ledger.service import check_balanced
from backend.models import load_all_models
from backend.validation.models import TapStatus
from card_schema.uploads.batch import AckStatus
from card_schema.uploads.records import TransactionKind
from tests.backend.validation_fixtures import (
    CARNET_PRODUCT,
    KeyRing,
    TerminalSim,
    VLDatabase,
    ctr,
    movement,
    pseudonym_of,
    seed_revenue_tables,
    vl_db,
)

__all__ = ["vl_db"]  # the fixture, imported for pytest

# Statements of each step today, for each database (checked below, every one a kill point).
# Not a target: when the code changes, look at the statement list the failure prints and update.
UPLOAD_STATEMENTS = {"sqlite": 11, "postgresql": 14}
# A chunk reads the terminal registry once (kind and SAM checks: validation/terminal_fit.py)
# and the partner readers' and shop tills' registrations once (backend/partners/fit.py); the card
# rules read a card's charged taps once per chunk (two per-session lookups folded into one read).
CHUNK_STATEMENTS = {"sqlite": 68, "postgresql": 48}

# Tables a chunk writes: the statements counted must include writes to each (proof that the hook
# sees the driver's bulk writes).
CHUNK_TABLES = (
    "taps",
    "ledger_entries",
    "anomalies",
    "deny_candidates",
    "gaps",
    "purse_states",
    "terminal_states",
    "upload_batches",
    "loop_state",
)

CARD = bytes.fromhex("0000000012345678")
OTHER_CARD = bytes.fromhex("00000000ABCDEF01")
NEW_CARD = bytes.fromhex("0000000055AA55AA")
FORGED_CARD = bytes.fromhex("00000000DEADBEEF")

_BACKEND_APP = "killable-backend"  # PostgreSQL application_name of the backend under test
_HANG_S = 120.0  # a backend that has not exited by then is stuck: killed, and the test fails


# -- the scenario -----------------------------------------------------------------------------


@dataclass
class Scenario:
    """Batches already processed (``history``) and pending (``pending``, in upload order).

    The pending ones make the chunk under test: card 1's missing session 11 arrives (a card gap
    closed, its anomaly resolved), GATE-B's missing sequence arrives (a terminal gap closed), a
    replay of a charged session, carnet trips, a new card, a new terminal (GATE-C) with a forged
    record (deny candidate), an aborted one and an undecided one (a new ``uncertain`` gap).
    """

    keys: KeyRing
    history: list[tuple[TerminalSim, bytes]]
    pending: list[tuple[TerminalSim, bytes]]
    statuses: dict[tuple[str, int], str]  # (terminal, seq) -> tap status at the end

    @classmethod
    def make(cls) -> Scenario:
        gate_a = TerminalSim("GATE-A")
        gate_b = TerminalSim("GATE-B", sam_serial=bytes.fromhex("5A000002"), station_id=2001)
        gate_c = TerminalSim("GATE-C", sam_serial=bytes.fromhex("5A000003"))
        carnet: dict[str, Any] = {
            "kind": TransactionKind.COUNTER_DECREASE,
            "product_code": CARNET_PRODUCT,
        }

        def trip(gate: TerminalSim, session: int, before: int) -> Any:
            return gate.record(
                OTHER_CARD,
                ctr(session),
                movements=[movement("plum.counter.1", -1, before)],
                **carnet,
            )

        a10 = gate_a.sv_debit(CARD, 10, 1000)
        a_trip5 = trip(gate_a, 5, 10)
        a12 = gate_a.sv_debit(CARD, 12, 800)  # session 11 not received yet: a card gap
        b_trip6 = trip(gate_b, 6, 9)
        b_new1 = gate_b.sv_debit(NEW_CARD, 1, 500)  # held back: a terminal gap at GATE-B
        b_trip7 = trip(gate_b, 7, 8)
        history = [
            (gate_a, gate_a.batch([a10, a_trip5, a12])),
            (gate_b, gate_b.batch([b_trip6, b_trip7])),
        ]
        a11 = gate_a.sv_debit(CARD, 11, 900)  # fills the card gap
        b_replay = gate_b.sv_debit(CARD, 10, 1000)  # card session 10 again: a replay
        b_trip8 = trip(gate_b, 8, 7)
        c13 = gate_c.sv_debit(CARD, 13, 700)
        c_new2 = gate_c.sv_debit(NEW_CARD, 2, 400)
        c_forged = gate_c.record(
            FORGED_CARD,
            ctr(1),
            kind=TransactionKind.SV_DEBIT,
            application="wallet",
            movements=[movement("wallet.sv", -100, 2000)],
            forge=True,
        )
        c_aborted = gate_c.record(NEW_CARD, ctr(3), committed=False)
        c_undecided = gate_c.record(OTHER_CARD, ctr(9))
        pending = [
            (gate_a, gate_a.batch([a11])),
            (gate_b, gate_b.batch([b_new1, b_replay, b_trip8])),
            (gate_c, gate_c.batch([c13, c_new2, c_forged, c_aborted], uncertain=[c_undecided])),
        ]
        statuses = {
            (r.terminal_id, r.seq): TapStatus.POSTED
            for r in (a10, a_trip5, a12, b_trip6, b_new1, b_trip7, a11, b_trip8, c13, c_new2)
        }
        statuses[(b_replay.terminal_id, b_replay.seq)] = TapStatus.REPLAY
        statuses[(c_forged.terminal_id, c_forged.seq)] = TapStatus.FORGED
        statuses[(c_aborted.terminal_id, c_aborted.seq)] = TapStatus.ABORTED
        return cls(KeyRing(gate_a, gate_b, gate_c), history, pending, statuses)


# -- the backend, in a process of its own ----------------------------------------------------


@dataclass
class BackendRun:
    """What a backend process did.

    Attributes:
        statements: the statements it started (up to and including the one it died before).
        killed: it was killed.
        result: what its step returned (not killed).
    """

    statements: list[str]
    killed: bool
    result: Any = None

    def commit_at(self) -> int:
        """The number of the step's (first) COMMIT: it took effect iff killed after that."""
        return self.statements.index("COMMIT") + 1

    def where(self) -> str:
        """The kill point, for failure messages."""
        if not self.killed:
            return "not killed"
        if self.statements[-1] == _AFTER_THE_LAST:
            return f"killed after its last statement ({len(self.statements) - 1})"
        return f"killed before statement {len(self.statements)}: {self.statements[-1]}"

    def assert_same_path(self, clean: BackendRun) -> None:
        """Killed before statement n, it had run what the run without a kill ran before its
        statement n (literal values aside: SQLite's trace gives them, the clock among them)."""
        ran = self.statements[:-1]
        assert [_shape(s) for s in ran] == [_shape(s) for s in clean.statements[: len(ran)]], (
            self.where()
        )


_AFTER_THE_LAST = "(after the last statement: the step returned)"


def _shape(statement: str) -> str:
    """A statement up to its first literal."""
    return re.split(r"['\d]", statement, maxsplit=1)[0]


Step = Callable[[VLDatabase], Any]


def run_backend(
    vl_db: VLDatabase, url: str, step: Step, kill_before: int | None = None
) -> BackendRun:
    """Run ``step`` in a forked backend process on the database ``url``.

    ``kill_before``: the process kills itself (SIGKILL) just before its statement number
    ``kill_before`` (1-based); one more than it has statements: right after its last one.
    The parent holds no database connection when it forks: :func:`parent_engine` has no pool,
    and the fixture's engine is disposed after use.
    """
    _no_sqlite_threads()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the backend: never returns into pytest
        try:
            os.close(read_fd)
            _backend(write_fd, vl_db, url, step, kill_before)
        except BaseException:
            _send(write_fd, {"error": traceback.format_exc()})
        finally:
            os._exit(1)
    os.close(write_fd)
    data = _receive(read_fd, pid)
    _, status = os.waitpid(pid, 0)
    report = json.loads(data) if data else {}
    if "error" in report:
        pytest.fail(f"the backend process failed:\n{report['error']}")
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert "killed" in report and report["killed"] == killed, (status, report)
    if not killed:
        assert os.waitstatus_to_exitcode(status) == 0
    run = BackendRun(report["statements"], killed, report.get("result"))
    if kill_before is not None:
        assert killed and len(run.statements) == kill_before, run.where()
    return run


def _backend(fd: int, vl_db: VLDatabase, url: str, step: Step, kill_before: int | None) -> None:
    # What the parent left in memory is never finalised here (a pooled connection of the parent
    # closed by this process's garbage collector would close the parent's session).
    gc.freeze()
    statements: list[str] = []

    def kill() -> None:
        _send(fd, {"killed": True, "statements": statements})
        os.kill(os.getpid(), signal.SIGKILL)

    def on_statement(sql: str) -> None:
        statements.append(" ".join(sql.split())[:150])
        if len(statements) == kill_before:
            kill()

    if url.startswith("postgresql"):
        url = f"{url}?application_name={_BACKEND_APP}"
    engine = make_engine(url)
    _count_statements(engine, on_statement)
    db = VLDatabase(url, engine, make_sessionmaker(engine), vl_db.dialect, vl_db.prepare_at_upload)
    result = step(db)
    if kill_before is not None:
        if kill_before != len(statements) + 1:
            raise AssertionError(f"kill point {kill_before}: only {len(statements)} statements")
        statements.append(_AFTER_THE_LAST)
        kill()
    engine.dispose()
    _send(fd, {"killed": False, "statements": statements, "result": result})
    os._exit(0)


def _count_statements(engine: Engine, on_statement: Callable[[str], None]) -> None:
    """Call ``on_statement`` before each statement the engine's connections start."""
    if engine.dialect.name == "sqlite":

        def trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(on_statement)

        event.listen(engine, "connect", trace, insert=True)  # before the connection's PRAGMAs
        return

    def counted(cls: type, name: str, describe: Callable[[tuple[Any, ...]], str]) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            on_statement(describe(args))
            return original(self, *args, **kwargs)

        setattr(cls, name, wrapper)  # this process's classes only (the backend child)

    counted(psycopg.Cursor, "execute", lambda args: str(args[0]))
    counted(psycopg.Cursor, "executemany", lambda args: f"{args[0]} (executemany)")
    counted(psycopg.Cursor, "copy", lambda args: str(args[0]))
    counted(psycopg.Copy, "finish", lambda _: "(inside the COPY: rows handed over, not ended)")
    counted(psycopg.Connection, "commit", lambda _: "COMMIT")
    counted(psycopg.Connection, "rollback", lambda _: "ROLLBACK")


def _send(fd: int, message: dict[str, Any]) -> None:
    view = memoryview(json.dumps(message).encode())
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int, pid: int) -> bytes:
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select_fd.select([fd], [], [], _HANG_S)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the backend process was stuck for {_HANG_S} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _no_sqlite_threads() -> None:
    """Wait for the SQLite checkpoint threads of loops run in this process (earlier tests).

    One may be inside SQLite, holding its process-wide mutex, when the process forks; the child
    would then block on it forever. They stop by themselves when their loop is idle (~2 s).
    """
    for thread in threading.enumerate():
        if thread.name == "sqlite-checkpoint":
            thread.join()


def upload_step(keys: KeyRing, terminal: TerminalSim, body: bytes) -> Step:
    """The upload endpoint receiving ``body`` from ``terminal``."""

    def step(db: VLDatabase) -> Any:
        outcome = db.upload(keys, terminal, body)
        return [outcome.ack.status.value, outcome.ack.batch_id, outcome.status_code]

    return step


def loop_step(db: VLDatabase) -> Any:
    """A validation loop started in this process (fresh memory), run until nothing is pending."""
    return asdict(db.loop().run_once())


# -- the database, compared ------------------------------------------------------------------

_METADATA = load_all_models()
# Times the backend reads from its clock (``utcnow()``): a rerun writes other values. Compared by
# rank among the column's distinct values: NULL or not, which rows share a time (one chunk, one
# upload) and in which order.
_CLOCK_COLUMNS = {
    "upload_batches": {"received_at", "processed_at"},
    "anomalies": {"detected_at", "resolved_at"},
    "gaps": {"opened_at", "closed_at"},
    "deny_candidates": {"created_at", "listed_at"},
    "ledger_entries": {"posted_at"},
}
# Columns holding an upload_batches.id: compared as the batch_id it names.
_BATCH_ROW_COLUMNS = {"taps": "batch_row", "upload_bodies": "batch_row"}

Dump = dict[str, list[tuple[Any, ...]]]


@functools.cache
def parent_engine(url: str) -> Engine:
    """The test's own engine on ``url``, in this process (the restarted backend's resend, the
    reads): without a pool, it holds no connection when the test forks or swaps a SQLite file."""
    return make_engine(url, poolclass=NullPool)


def _surrogate(table: Table) -> bool:
    """The table's key is a generated ``id``."""
    return [c.name for c in table.primary_key.columns] == ["id"]


def dump(url: str) -> Dump:
    """Every table of the database, in a form two runs of the same work give identically.

    Compared exactly: every column, except
    - generated ``id`` keys: rows are listed in ``id`` order (arrival, processing order), the
      values themselves are not compared (a PostgreSQL sequence is not transactional: the killed
      transaction used numbers the rerun does not get back);
    - ``batch_row`` (an upload_batches id): compared as the batch's ``batch_id``;
    - the clock columns of ``_CLOCK_COLUMNS``: compared by rank, see there.
    """
    with parent_engine(url).connect() as conn:
        batches = _METADATA.tables["upload_batches"]
        batch_ids = dict(conn.execute(select(batches.c.id, batches.c.batch_id)).all())
        return {table.name: _canonical(conn, table, batch_ids) for table in _METADATA.sorted_tables}


def _canonical(conn: Connection, table: Table, batch_ids: dict[int, str]) -> list[tuple[Any, ...]]:
    order = list(table.primary_key.columns) or list(table.columns)
    rows = [row._mapping for row in conn.execute(select(table).order_by(*order))]
    columns = [c.name for c in table.columns if not (c.name == "id" and _surrogate(table))]
    clock = _CLOCK_COLUMNS.get(table.name, set())
    ranks = {
        name: {v: i for i, v in enumerate(sorted({r[name] for r in rows} - {None}))}
        for name in clock
    }
    batch_row = _BATCH_ROW_COLUMNS.get(table.name)
    canonical = []
    for row in rows:
        values: list[Any] = []
        for name in columns:
            value = row[name]
            if name in clock and value is not None:
                value = f"time #{ranks[name][value]}"
            elif name == batch_row:
                value = batch_ids.get(value, f"no batch row {value}")
            values.append(value)
        canonical.append(tuple(values))
    return canonical


def differences(got: Dump, want: Dump) -> str:
    """The rows that differ, table by table (``-`` wanted, ``+`` found)."""
    lines = []
    for table, rows in want.items():
        if got[table] != rows:
            lines.append(f"{table}:")
            lines += [f"  - {_short(r)}" for r in rows if r not in got[table]]
            lines += [f"  + {_short(r)}" for r in got[table] if r not in rows]
            if set(rows) == set(got[table]):
                lines.append("  (same rows, other order or count)")
    return "\n".join(lines)


def _short(row: tuple[Any, ...]) -> str:
    """A row for a failure message: long values (batch bytes) cut."""
    return repr(tuple(v[:40] + b"..." if isinstance(v, bytes) and len(v) > 40 else v for v in row))


def assert_whole_or_nothing(state: Dump, before: Dump, after: Dump, run: BackendRun) -> bool:
    """``state`` is ``before`` or ``after``; returns True for ``after`` (the step took effect)."""
    if state == before:
        return False
    if state == after:
        return True
    pytest.fail(
        f"{run.where()}: the database holds part of the step\n"
        f"against the state before it:\n{differences(state, before)}\n"
        f"against the state after it:\n{differences(state, after)}"
    )


def assert_same(state: Dump, reference: Dump, run: BackendRun, what: str) -> None:
    if state != reference:
        pytest.fail(
            f"{run.where()}: {what} differs from the run without a kill\n"
            f"{differences(state, reference)}"
        )


class StartingPoint:
    """The test database as it is now, put back before each kill point.

    SQLite: a copy of the file, copied back after deleting what the killed run left (its WAL
    and shared memory must not be replayed onto the copy). PostgreSQL: a copy of every table in
    a schema of its own (outside the backend's search path), put back in one transaction (much
    cheaper than a database per kill point; ids are not compared, see :func:`dump`).
    """

    _SCHEMA = "kill_snapshot"

    def __init__(self, url: str) -> None:
        self.url = url
        self._tables = [t.name for t in _METADATA.sorted_tables]  # parents first
        if url.startswith("sqlite"):
            self._path = Path(url.removeprefix("sqlite:///"))
            self._saved = self._path.with_name("starting-point.db")
            _copy_sqlite(self._path, self._saved)
            return
        statements = [f"CREATE SCHEMA {self._SCHEMA}"]
        statements += [f"CREATE TABLE {self._SCHEMA}.{t} AS TABLE public.{t}" for t in self._tables]
        self._execute(statements)

    def restore(self) -> None:
        if self.url.startswith("sqlite"):
            _copy_sqlite(self._saved, self._path)
            return
        statements = [f"DELETE FROM public.{t}" for t in reversed(self._tables)]
        statements += [
            f"INSERT INTO public.{t} OVERRIDING SYSTEM VALUE TABLE {self._SCHEMA}.{t}"
            for t in self._tables
        ]
        self._execute(statements)

    def _execute(self, statements: list[str]) -> None:
        with parent_engine(self.url).begin() as conn:
            conn.exec_driver_sql("; ".join(statements))


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a closed SQLite database, with the WAL a dead process may have left (replayed by the
    next opener), over ``target`` and whatever WAL and shared memory ``target`` had."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    if Path(f"{source}-wal").exists():
        shutil.copyfile(f"{source}-wal", f"{target}-wal")


# -- the tests --------------------------------------------------------------------------------


def _stage(vl_db: VLDatabase, scenario: Scenario, pending: list[tuple[TerminalSim, bytes]]) -> None:
    """The database before the step: history processed (by a loop in another process: one here
    would leave its SQLite checkpoint thread running when the tests fork), ``pending`` stored."""
    tables = set(inspect(vl_db.engine).get_table_names())
    assert tables == {*_METADATA.tables, "alembic_version"}, "dump() must see every table"
    seed_revenue_tables(vl_db.factory)
    for terminal, body in scenario.history:
        assert vl_db.upload(scenario.keys, terminal, body).ack.status is AckStatus.ACCEPTED
    vl_db.engine.dispose()
    assert run_backend(vl_db, vl_db.url, loop_step).result["batches"] == len(scenario.history)
    for terminal, body in pending:
        assert vl_db.upload(scenario.keys, terminal, body).ack.status is AckStatus.ACCEPTED
    vl_db.engine.dispose()


def _check_counted(run: BackendRun, pinned: int, tables: tuple[str, ...]) -> None:
    listing = "\n".join(f"{n:3d} {s}" for n, s in enumerate(run.statements, 1))
    for table in tables:
        write = re.compile(rf"(INSERT INTO|UPDATE|COPY|DELETE FROM) {table}\b", re.IGNORECASE)
        assert any(write.match(s) for s in run.statements), (
            f"no write to {table} among the statements counted:\n{listing}"
        )
    assert len(run.statements) == pinned, (
        f"{len(run.statements)} statements, {pinned} pinned; they are now:\n{listing}"
    )


def _check_end_state(url: str, scenario: Scenario) -> None:
    """The end state of the run without a kill is what the scenario says: every record once, with
    its status; each anomaly, resolved or not; the forged card listed; the gaps; the ledger."""
    engine = parent_engine(url)
    with engine.connect() as conn:

        def rows(sql: str, **params: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in conn.execute(text(sql), params))

        assert rows("SELECT terminal_id, terminal_seq, status FROM taps") == sorted(
            (terminal, seq, status) for (terminal, seq), status in scenario.statuses.items()
        )
        assert rows("SELECT kind, resolved_at IS NOT NULL FROM anomalies") == [
            ("card_counter_gap", True),
            ("forged_signature", False),
            ("replay", False),
            ("sequence_gap", True),
        ]
        assert rows("SELECT card_serial FROM deny_candidates") == [(FORGED_CARD.hex().upper(),)]
        assert rows("SELECT count(*) FROM upload_batches WHERE processed_at IS NULL") == [(0,)]
        assert rows("SELECT scope, state, closed_by FROM gaps") == [
            ("card", "missing", "record"),
            ("terminal", "missing", "record"),
            ("terminal", "uncertain", None),
        ]
        card = rows(
            "SELECT purses FROM purse_states WHERE card_pseudonym = :p", p=pseudonym_of(CARD)
        )
        assert [json.loads(purses) for (purses,) in card] == [{"wallet.sv": [ctr(13), 600]}]
    with make_sessionmaker(engine)() as session:
        assert check_balanced(session).lines > 0


def test_an_upload_killed_at_every_statement_is_stored_once(vl_db: VLDatabase) -> None:
    scenario = Scenario.make()
    terminal, body = scenario.pending[-1]
    _stage(vl_db, scenario, scenario.pending[:-1])
    url = vl_db.url
    start = StartingPoint(url)
    before = dump(url)
    step = upload_step(scenario.keys, terminal, body)

    def finish(stored: bool, run: BackendRun) -> Dump:
        """The terminal sends the batch again, then a loop processes what is pending."""
        engine = parent_engine(url)
        db = VLDatabase(
            url, engine, make_sessionmaker(engine), vl_db.dialect, vl_db.prepare_at_upload
        )
        outcome = db.upload(scenario.keys, terminal, body)
        assert outcome.status_code == 200, run.where()
        assert outcome.ack.status is (AckStatus.DUPLICATE if stored else AckStatus.ACCEPTED), (
            run.where()
        )
        assert_same(dump(url), after, run, "the database after the resend")
        run_backend(vl_db, url, loop_step)
        return dump(url)

    clean = run_backend(vl_db, url, step)
    assert clean.result[0] == AckStatus.ACCEPTED.value
    batch_id = clean.result[1]
    _check_counted(clean, UPLOAD_STATEMENTS[vl_db.dialect], ("upload_batches", "upload_bodies"))
    after = dump(url)
    reference = finish(True, clean)
    _check_end_state(url, scenario)

    for n in range(1, len(clean.statements) + 2):
        start.restore()
        run = run_backend(vl_db, url, step, kill_before=n)
        run.assert_same_path(clean)
        state = dump(url)
        stored = assert_whole_or_nothing(state, before, after, run)
        assert stored == (n > clean.commit_at()), run.where()
        # The same, said for the two tables: the batch row and its bytes together, or neither.
        batch_rows = [r for r in state["upload_batches"] if r[0] == batch_id]
        bodies = [r for r in state["upload_bodies"] if r[0] == batch_id]
        assert len(batch_rows) == len(bodies) == int(stored), run.where()
        if stored:
            assert bodies[0][1] == body and (bodies[0][2] is not None) == vl_db.prepare_at_upload
        assert_same(finish(stored, run), reference, run, "the end state")


def test_a_chunk_killed_at_every_statement_is_done_again_whole(vl_db: VLDatabase) -> None:
    scenario = Scenario.make()
    _stage(vl_db, scenario, scenario.pending)
    url = vl_db.url
    start = StartingPoint(url)
    before = dump(url)

    clean = run_backend(vl_db, url, loop_step)
    assert clean.result["batches"] == len(scenario.pending)
    _check_counted(clean, CHUNK_STATEMENTS[vl_db.dialect], CHUNK_TABLES)
    after = dump(url)
    assert run_backend(vl_db, url, loop_step).result["batches"] == 0  # a restart: nothing to do
    reference = dump(url)
    assert_same(reference, after, clean, "the state after a restart with nothing pending")
    _check_end_state(url, scenario)

    for n in range(1, len(clean.statements) + 2):
        start.restore()
        run = run_backend(vl_db, url, loop_step, kill_before=n)
        run.assert_same_path(clean)
        done = assert_whole_or_nothing(dump(url), before, after, run)
        assert done == (n > clean.commit_at()), run.where()
        restarted = run_backend(vl_db, url, loop_step)  # a new loop, fresh memory
        assert restarted.result["batches"] == (0 if done else len(scenario.pending)), run.where()
        assert_same(dump(url), reference, run, "the end state")
