"""The terminal's offline journal: SQLite in WAL mode, written ahead of every card commit.

Write-ahead protocol followed by the gate, the canteen till and the other terminals (state diagram
in ``docs/journal.md``):

1. before sending Close Secure Session, :meth:`Journal.begin` durably records the intent and
   allocates the terminal sequence in the same SQL transaction;
2. the close response verified: :meth:`Journal.commit` with the SAM's traceable signature;
3. the card refused (definite status word): :meth:`Journal.abort`;
4. the close may have reached the card but no answer came back: :meth:`Journal.mark_uncertain`;
5. at the next sight of that card, :meth:`Journal.resolve` decides from the card's transaction
   counter and event log (:mod:`terminal.journal.recovery`).

A record still PENDING when the journal is opened by its owner belonged to a process that died
between steps 1 and 2-4: it becomes UNCERTAIN, and the card decides at its next tap. Because step 1
is durable before the card can commit, a committed session always has its record: nothing is lost.
Because (card serial, card transaction counter) is unique among live records and a terminal
sequence is never reused, nothing is counted twice.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` makes each SQL COMMIT reach the disk
(fsync of the WAL) before :meth:`Journal.begin` returns, so it survives power loss, not only a
killed process. One :class:`Journal` object per thread (sqlite3 connections are not shared); only
the owner (the transaction thread) may write card transactions, the upload thread opens the same
file with ``owner=False``.

The journal also keeps the outbox of signed upload batches (table ``batches``), so that a batch
sent before a crash is re-sent byte for byte after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from card_schema.uploads.records import (
    JournalRecord,
    Resolution,
    TransactionIntent,
    TransactionState,
    canonical_json,
    check_terminal_id,
    format_utc,
    parse_utc,
    to_hex,
)
from terminal.journal.errors import (
    DuplicateTransactionError,
    JournalError,
    JournalStateError,
)
from terminal.journal.recovery import decide_from_card

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    acked_at TEXT,
    ack BLOB
) STRICT;
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('PENDING', 'COMMITTED', 'ABORTED', 'UNCERTAIN')),
    card_serial TEXT NOT NULL,
    card_tx_counter INTEGER NOT NULL,
    intent TEXT NOT NULL,
    sam_signature BLOB,
    resolution TEXT,
    abort_reason TEXT,
    decided_at TEXT,
    batch_id TEXT REFERENCES batches (batch_id),
    CHECK ((state IN ('COMMITTED', 'ABORTED')) = (resolution IS NOT NULL)),
    CHECK (batch_id IS NULL OR state IN ('COMMITTED', 'ABORTED'))
) STRICT;
-- One live record per card session: a second one would be a double charge.
CREATE UNIQUE INDEX IF NOT EXISTS transactions_card_session
    ON transactions (card_serial, card_tx_counter) WHERE state <> 'ABORTED';
CREATE INDEX IF NOT EXISTS transactions_unbatched
    ON transactions (seq) WHERE batch_id IS NULL AND state IN ('COMMITTED', 'ABORTED');
CREATE INDEX IF NOT EXISTS transactions_undecided
    ON transactions (card_serial) WHERE state IN ('PENDING', 'UNCERTAIN');
"""


@dataclass(frozen=True)
class StoredBatch:
    """A signed upload batch kept in the outbox until the backend acknowledges it.

    Attributes:
        batch_id: deterministic id (``docs/batch-format.md``).
        first_seq: lowest terminal sequence of its records.
        last_seq: highest terminal sequence of its records.
        body: the exact bytes sent, and re-sent, to the backend.
        created_at: when the batch was built.
        acked_at: when the backend acknowledged it, ``None`` while unacknowledged.
        record_count: how many records it holds.
    """

    batch_id: str
    first_seq: int
    last_seq: int
    body: bytes
    created_at: datetime
    acked_at: datetime | None
    record_count: int


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Journal:
    """One terminal's journal file. Open it with :meth:`open`; close it (or use ``with``).

    Attributes:
        terminal_id: the terminal the journal belongs to (fixed at creation).
        recovered: terminal sequences found PENDING at open and turned UNCERTAIN.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        terminal_id: str,
        *,
        owner: bool,
        lock_fd: int | None,
        clock: Callable[[], datetime],
    ) -> None:
        """Use :meth:`open`; this constructor takes an already configured connection."""
        self._conn = conn
        self.terminal_id = terminal_id
        self._owner = owner
        self._lock_fd = lock_fd
        self._clock = clock
        self.recovered: tuple[int, ...] = ()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        terminal_id: str,
        *,
        owner: bool = True,
        clock: Callable[[], datetime] = _utc_now,
        seq_floor: int = 0,
        busy_timeout_s: float = 5.0,
    ) -> Journal:
        """Open (or create) the journal at ``path``.

        Args:
            path: the SQLite file; ``-wal`` and ``-shm`` files live beside it, and the owner
                lock in ``<path>.owner.lock``.
            terminal_id: this terminal's id; a journal created for another terminal is refused.
            owner: the transaction thread's handle. Only one owner at a time (an exclusive
                ``flock``, released by the kernel even on SIGKILL); opening as owner turns the
                PENDING records of a dead process into UNCERTAIN. The upload thread uses
                ``owner=False``.
            clock: source of ``decided_at`` and batch times (UTC, timezone-aware).
            seq_floor: for a new journal only: the first sequence will be ``seq_floor + 1``.
                A replaced terminal disk must continue above the sequences the backend has
                already seen, or its new records would be dropped as duplicates.
            busy_timeout_s: how long a write waits for the other thread's write.

        Raises:
            JournalError: another owner holds the journal, the file is another terminal's, or
                the schema version is unknown.
        """
        check_terminal_id(terminal_id)
        path = Path(path)
        lock_fd = cls._take_owner_lock(path) if owner else None
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=True
            )
            journal = cls(conn, terminal_id, owner=owner, lock_fd=lock_fd, clock=clock)
            journal._configure(seq_floor)
            for private in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                with contextlib.suppress(FileNotFoundError, PermissionError):
                    if private.stat().st_mode & 0o077:  # a journal names cards: owner only
                        os.chmod(private, 0o600)
            if owner:
                journal.recovered = journal._recover_pending()
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return journal

    @staticmethod
    def _take_owner_lock(path: Path) -> int:
        fd = os.open(f"{path}.owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise JournalError(f"{path} is already open by another transaction owner") from exc
        return fd

    def _configure(self, seq_floor: int) -> None:
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"SQLite refused WAL mode (got {mode!r})")
            # FULL: the WAL is fsynced at every COMMIT, so a begun intent survives power loss.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal: {exc}") from exc
        self._create_schema(seq_floor)

    def _create_schema(self, seq_floor: int) -> None:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            meta = dict(conn.execute("SELECT key, value FROM journal_meta").fetchall())
            if not meta:
                if seq_floor < 0:
                    raise JournalError("seq_floor is not negative")
                conn.executemany(
                    "INSERT INTO journal_meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("terminal_id", self.terminal_id),
                        ("last_seq", str(seq_floor)),
                    ],
                )
                return
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise JournalError(f"unknown journal schema version {meta.get('schema_version')!r}")
        if meta.get("terminal_id") != self.terminal_id:
            raise JournalError(
                f"this journal belongs to terminal {meta.get('terminal_id')!r}, "
                f"not {self.terminal_id!r}"
            )

    def _recover_pending(self) -> tuple[int, ...]:
        with self._write() as conn:
            seqs = tuple(
                row[0]
                for row in conn.execute(
                    "SELECT seq FROM transactions WHERE state = 'PENDING' ORDER BY seq"
                )
            )
            conn.execute("UPDATE transactions SET state = 'UNCERTAIN' WHERE state = 'PENDING'")
        if seqs:
            log.warning(
                "journal %s: sessions %s were open at the last stop, now UNCERTAIN",
                self.terminal_id,
                list(seqs),
            )
        return seqs

    def close(self) -> None:
        """Close the connection and release the owner lock."""
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One SQL write transaction; BEGIN IMMEDIATE takes the write lock up front."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise JournalError(f"journal database busy or broken: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"journal database error: {exc}") from exc
            raise

    # -- the write-ahead protocol ----------------------------------------------------------

    def begin(self, intent: TransactionIntent) -> int:
        """Durably record ``intent`` before the card is asked to commit it.

        The terminal sequence is allocated in the same SQL transaction as the insert, and the
        transaction is on disk when this returns.

        Returns:
            The terminal sequence of the new PENDING record.

        Raises:
            DuplicateTransactionError: a live record already holds this card serial and card
                transaction counter (resolve it first: the card may already have paid).
            JournalError: this handle is not the owner, or the database failed.
        """
        self._require_owner()
        serial = to_hex(intent.card_serial)
        intent_json = canonical_json(intent.to_json()).decode("utf-8")
        with self._write() as conn:
            row = conn.execute(
                "SELECT seq, state FROM transactions WHERE card_serial = ? "
                "AND card_tx_counter = ? AND state <> 'ABORTED'",
                (serial, intent.card_tx_counter),
            ).fetchone()
            if row is not None:
                raise DuplicateTransactionError(
                    f"card {serial} counter {intent.card_tx_counter} already has record "
                    f"{row[0]} ({row[1]})",
                    seq=row[0],
                )
            last = int(
                conn.execute("SELECT value FROM journal_meta WHERE key = 'last_seq'").fetchone()[0]
            )
            seq = last + 1
            conn.execute("UPDATE journal_meta SET value = ? WHERE key = 'last_seq'", (str(seq),))
            conn.execute(
                "INSERT INTO transactions (seq, state, card_serial, card_tx_counter, intent) "
                "VALUES (?, 'PENDING', ?, ?, ?)",
                (seq, serial, intent.card_tx_counter, intent_json),
            )
        log.debug("journal %s: begin %d %s", self.terminal_id, seq, intent.kind.value)
        return seq

    def commit(self, seq: int, sam_signature: bytes) -> JournalRecord:
        """The card's close response verified: the session is committed on the card.

        Idempotent: committing again with the same signature returns the record unchanged.

        Args:
            seq: the record's terminal sequence.
            sam_signature: the SAM's traceable signature, opaque bytes from the SAM layer.

        Raises:
            JournalStateError: the record is not PENDING (or is COMMITTED with another signature).
        """
        self._require_owner()
        if not sam_signature:
            raise JournalError("a committed record carries the SAM's traceable signature")
        record = self.get(seq)
        if record.state is TransactionState.COMMITTED and record.sam_signature == sam_signature:
            return record
        return self._decide(
            seq,
            {TransactionState.PENDING},
            TransactionState.COMMITTED,
            Resolution.CARD_CLOSE,
            sam_signature=sam_signature,
        )

    def abort(self, seq: int, reason: str) -> JournalRecord:
        """The card definitely refused the session (status word): nothing changed on the card.

        Idempotent for a record already aborted on a card refusal.

        Raises:
            JournalStateError: the record is not PENDING.
        """
        self._require_owner()
        record = self.get(seq)
        if (
            record.state is TransactionState.ABORTED
            and record.resolution is Resolution.CARD_REFUSAL
        ):
            return record
        return self._decide(
            seq,
            {TransactionState.PENDING},
            TransactionState.ABORTED,
            Resolution.CARD_REFUSAL,
            abort_reason=reason,
        )

    def mark_uncertain(self, seq: int) -> JournalRecord:
        """The close may have reached the card but its answer was lost: the next tap decides.

        Raises:
            JournalStateError: the record is already decided.
        """
        self._require_owner()
        with self._write() as conn:
            state = self._state(conn, seq)
            if state is TransactionState.PENDING:
                conn.execute("UPDATE transactions SET state = 'UNCERTAIN' WHERE seq = ?", (seq,))
            elif state is not TransactionState.UNCERTAIN:
                raise JournalStateError(
                    "only a PENDING record can become UNCERTAIN", seq=seq, state=state.value
                )
        return self.get(seq)

    def resolve(
        self, card_serial: bytes, card_tx_counter_now: int, events: Sequence[bytes]
    ) -> list[JournalRecord]:
        """Decide the UNCERTAIN records of a card from what its next tap shows.

        Call it at every tap, after reading the card's transaction counter and event log and
        before this tap's own :meth:`begin`: a session recovered as COMMITTED is not charged again.

        Args:
            card_serial: the card seen now.
            card_tx_counter_now: its transaction counter read at this tap.
            events: the log the uncertain sessions wrote to, read now, newest first.

        Returns:
            The card's records that were UNCERTAIN, in sequence order, with their new state
            (COMMITTED, ABORTED, or still UNCERTAIN when the card's evidence is inconclusive).
        """
        self._require_owner()
        serial = to_hex(card_serial)
        results: list[JournalRecord] = []
        if not self._conn.execute(
            "SELECT 1 FROM transactions WHERE card_serial = ? AND state = 'UNCERTAIN' LIMIT 1",
            (serial,),
        ).fetchone():
            return results  # the common tap: no write transaction, no fsync
        with self._write() as conn:
            rows = conn.execute(
                "SELECT seq FROM transactions WHERE card_serial = ? AND state = 'UNCERTAIN' "
                "ORDER BY seq",
                (serial,),
            ).fetchall()
            for (seq,) in rows:
                record = self._get(conn, seq)
                decision = decide_from_card(record.intent, card_tx_counter_now, events)
                if decision.state is TransactionState.COMMITTED:
                    self._set_decided(
                        conn, seq, decision.state, Resolution.RECOVERED_FROM_CARD, None, None
                    )
                elif decision.state is TransactionState.ABORTED:
                    self._set_decided(
                        conn, seq, decision.state, Resolution.NOT_ON_CARD, decision.reason, None
                    )
                log.info(
                    "journal %s: record %d resolved %s: %s",
                    self.terminal_id,
                    seq,
                    decision.state.value,
                    decision.reason,
                )
                results.append(self._get(conn, seq))
        return results

    def _decide(
        self,
        seq: int,
        allowed: set[TransactionState],
        state: TransactionState,
        resolution: Resolution,
        *,
        sam_signature: bytes | None = None,
        abort_reason: str | None = None,
    ) -> JournalRecord:
        with self._write() as conn:
            current = self._state(conn, seq)
            if current not in allowed:
                raise JournalStateError(
                    f"cannot become {state.value}", seq=seq, state=current.value
                )
            self._set_decided(conn, seq, state, resolution, abort_reason, sam_signature)
            return self._get(conn, seq)

    def _set_decided(
        self,
        conn: sqlite3.Connection,
        seq: int,
        state: TransactionState,
        resolution: Resolution,
        abort_reason: str | None,
        sam_signature: bytes | None,
    ) -> None:
        conn.execute(
            "UPDATE transactions SET state = ?, resolution = ?, abort_reason = ?, "
            "sam_signature = ?, decided_at = ? WHERE seq = ?",
            (
                state.value,
                resolution.value,
                abort_reason,
                sam_signature,
                format_utc(self._clock()),
                seq,
            ),
        )

    def _require_owner(self) -> None:
        if not self._owner:
            raise JournalError("only the journal's owner records card transactions")

    # -- reading ---------------------------------------------------------------------------

    def get(self, seq: int) -> JournalRecord:
        """The record with terminal sequence ``seq``.

        Raises:
            JournalError: no such record.
        """
        return self._get(self._conn, seq)

    def records(
        self, states: Iterable[TransactionState] | None = None, *, card_serial: bytes | None = None
    ) -> list[JournalRecord]:
        """Records in sequence order, optionally only in ``states`` or of one card."""
        query = f"SELECT {_COLUMNS} FROM transactions WHERE 1 = 1"
        params: list[Any] = []
        if states is not None:
            names = [s.value for s in states]
            query += f" AND state IN ({', '.join('?' * len(names))})"
            params += names
        if card_serial is not None:
            query += " AND card_serial = ?"
            params.append(to_hex(card_serial))
        rows = self._conn.execute(query + " ORDER BY seq", params).fetchall()
        return [self._row_to_record(row) for row in rows]

    def undecided(self) -> list[JournalRecord]:
        """PENDING and UNCERTAIN records, in sequence order."""
        return self.records([TransactionState.PENDING, TransactionState.UNCERTAIN])

    def last_seq(self) -> int:
        """The last terminal sequence allocated (``seq_floor`` for an empty journal)."""
        row = self._conn.execute("SELECT value FROM journal_meta WHERE key = 'last_seq'").fetchone()
        return int(row[0])

    def _state(self, conn: sqlite3.Connection, seq: int) -> TransactionState:
        row = conn.execute("SELECT state FROM transactions WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise JournalError(f"no journal record {seq}")
        return TransactionState(row[0])

    def _get(self, conn: sqlite3.Connection, seq: int) -> JournalRecord:
        row = conn.execute(f"SELECT {_COLUMNS} FROM transactions WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise JournalError(f"no journal record {seq}")
        return self._row_to_record(row)

    def _row_to_record(self, row: tuple[Any, ...]) -> JournalRecord:
        seq, state, intent, sam_signature, resolution, abort_reason, decided_at, batch_id = row
        return JournalRecord(
            terminal_id=self.terminal_id,
            seq=seq,
            state=TransactionState(state),
            intent=TransactionIntent.from_json(json.loads(intent)),
            sam_signature=None if sam_signature is None else bytes(sam_signature),
            resolution=None if resolution is None else Resolution(resolution),
            abort_reason=abort_reason,
            decided_at=None
            if decided_at is None
            else parse_utc(decided_at, field_name="decided_at"),
            batch_id=batch_id,
        )

    # -- the upload outbox -----------------------------------------------------------------

    def unbatched(self, limit: int) -> list[JournalRecord]:
        """Decided records not yet in any batch, lowest sequences first, at most ``limit``."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM transactions WHERE batch_id IS NULL "
            "AND state IN ('COMMITTED', 'ABORTED') ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._row_to_record(row) for row in rows]

    def store_batch(
        self, batch_id: str, seqs: Sequence[int], body: bytes, created_at: datetime
    ) -> StoredBatch:
        """Put a signed batch in the outbox and assign its records to it, atomically.

        Idempotent for the same id and bytes.

        Raises:
            JournalError: a record is undecided or already in another batch, or the id is
                taken by other bytes.
        """
        if not seqs:
            raise JournalError("a batch holds at least one record")
        with self._write() as conn:
            existing = conn.execute(
                "SELECT body FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if existing is not None:
                if bytes(existing[0]) != body:
                    raise JournalError(f"batch {batch_id} already exists with other bytes")
                return self._batch(conn, batch_id)
            conn.execute(
                "INSERT INTO batches (batch_id, first_seq, last_seq, body, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch_id, min(seqs), max(seqs), body, format_utc(created_at)),
            )
            for seq in seqs:
                updated = conn.execute(
                    "UPDATE transactions SET batch_id = ? WHERE seq = ? AND batch_id IS NULL "
                    "AND state IN ('COMMITTED', 'ABORTED')",
                    (batch_id, seq),
                ).rowcount
                if updated != 1:
                    raise JournalError(f"record {seq} is undecided or already batched")
            return self._batch(conn, batch_id)

    def unacked_batches(self) -> list[StoredBatch]:
        """Batches waiting for the backend's acknowledgement, in the order they were built."""
        rows = self._conn.execute(
            "SELECT batch_id FROM batches WHERE acked_at IS NULL ORDER BY rowid"
        ).fetchall()
        return [self._batch(self._conn, row[0]) for row in rows]

    def batch(self, batch_id: str) -> StoredBatch:
        """The stored batch ``batch_id``.

        Raises:
            JournalError: no such batch.
        """
        return self._batch(self._conn, batch_id)

    def mark_batch_acked(self, batch_id: str, ack: bytes) -> StoredBatch:
        """Record the backend's acknowledgement; idempotent.

        Raises:
            JournalError: no such batch.
        """
        with self._write() as conn:
            self._batch(conn, batch_id)
            conn.execute(
                "UPDATE batches SET acked_at = ?, ack = ? WHERE batch_id = ? AND acked_at IS NULL",
                (format_utc(self._clock()), ack, batch_id),
            )
            return self._batch(conn, batch_id)

    def unuploaded_count(self) -> int:
        """Decided records whose batch is not acknowledged yet (or that are not batched yet)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM transactions t LEFT JOIN batches b ON t.batch_id = b.batch_id "
            "WHERE t.state IN ('COMMITTED', 'ABORTED') AND b.acked_at IS NULL"
        ).fetchone()
        return int(row[0])

    def _batch(self, conn: sqlite3.Connection, batch_id: str) -> StoredBatch:
        row = conn.execute(
            "SELECT batch_id, first_seq, last_seq, body, created_at, acked_at, "
            "(SELECT COUNT(*) FROM transactions t WHERE t.batch_id = b.batch_id) "
            "FROM batches b WHERE batch_id = ?",
            (batch_id,),
        ).fetchone()
        if row is None:
            raise JournalError(f"no batch {batch_id}")
        return StoredBatch(
            batch_id=row[0],
            first_seq=row[1],
            last_seq=row[2],
            body=bytes(row[3]),
            created_at=parse_utc(row[4], field_name="created_at"),
            acked_at=None if row[5] is None else parse_utc(row[5], field_name="acked_at"),
            record_count=row[6],
        )


_COLUMNS = "seq, state, intent, sam_signature, resolution, abort_reason, decided_at, batch_id"


def remove_journal_files(path: str | os.PathLike[str]) -> None:
    """Delete a journal and its side files (WAL, shared memory, owner lock).

    For a command that created a journal and then failed to start: it leaves nothing behind.
    Never call it on a journal that holds records.
    """
    base = Path(path)
    for leftover in (
        base,
        Path(f"{base}-wal"),
        Path(f"{base}-shm"),
        Path(f"{base}-journal"),
        Path(f"{base}.owner.lock"),
    ):
        leftover.unlink(missing_ok=True)
