"""The validation loop: drain stored upload batches into taps, anomalies and ledger entries.

:meth:`ValidationLoop.run_once` takes pending batches (``upload_batches.processed_at IS NULL``)
in arrival order, in chunks of about ``chunk_records`` records, and processes each chunk in ONE
database transaction: everything a chunk produces is bulk-inserted (the driver's
``executemany`` or ``COPY``), then its batches are marked processed. A crash loses nothing (the
batches stay pending) and never half-applies a chunk. :meth:`ValidationLoop.serve` runs it as a
dedicated worker that takes full chunks. Between chunks the loop keeps the card states it wrote,
while ``loop_state.generation`` says no other loop committed (see ``docs/validation-loop.md``).

Per record (rules in ``docs/validation-loop.md``):

1. ``(terminal_id, terminal_seq)`` already stored: a no-op (different content: ``sequence_reuse``).
2. SAM traceable signature over the record's signing bytes (:mod:`card_schema.uploads.signing`),
   verified with the SAM's derived key (cached in memory) by the upload worker or, when it did
   not, by the loop (:mod:`backend.validation.prepare`). Bad: ``forged_signature``, nothing
   charged, card put on ``deny_candidates``.
3. ABORTED: stored, nothing charged.
4. COMMITTED: ``(card pseudonym, card counter)`` already charged by a record: ``replay`` (not
   charged again). Charged by a recovery from a card log: this is its original, which becomes
   the charged tap (the recovered one is un-charged) and corrects the recovered posting.
5. The card's next session (no gap, no recovered session pending): its purse chain is checked
   against the card's last balances. Any other session goes through the card rules
   (:meth:`_Chunk._card_rules`): the card's state is derived from the set of its sessions
   known, whatever the order: gaps (``card_counter_gap``), sessions recovered from any
   original's ``last_events`` (``recovered_from_card_log``), purse chains between consecutive
   originals, a difference being the inferred movement of the oldest recovered session between
   them or a ``chain_break``.
   Calypso transaction counters count DOWN: everything that depends on the order of a card's
   sessions works on :func:`card_schema.uploads.counters.session_number` (ascending), while
   deduplication and every stored ``card_tx_counter`` (taps, anomalies, gaps, purse states)
   keep the raw counter the card reported.
6. Posted to the ledger (:func:`backend.ledger.accounts.session_posting`); ring-fence
   violations (``ring_fence_violation``) go to suspense.

Per batch: terminal sequence gaps, using the batch's ``uncertain`` list (``sequence_gap``).

Batches are stored only after :func:`card_schema.uploads.batch.verify_batch_summary` accepted
them, so the loop reads them back with a plain (msgspec) JSON decode and trusts their shape.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, ClassVar, cast

import msgspec
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from backend.columns import UTCDateTime, utcnow
from backend.db import SQLiteCheckpointer
from backend.ledger.accounts import SUSPENSE_CARD_LOG, SessionContext, card_account, session_posting
from backend.ledger.models import LedgerEntry
from backend.partners.fit import Registrations
from backend.uploads.models import UploadBatch, UploadBody
from backend.validation.models import (
    Anomaly,
    DenyCandidate,
    Gap,
    LoopState,
    OperatorStation,
    ProductValue,
    PurseState,
    Tap,
    TapStatus,
    TerminalState,
)
from backend.validation.prepare import (
    SAM_FORGED,
    SAM_VERIFIED,
    PreparedMismatch,
    RecordPreparer,
    decode_prepared,
)
from backend.validation.providers import CardPseudonymizer, TraceKeyProvider
from backend.validation.terminal_fit import TerminalFit, suspended
from card_schema.uploads.counters import card_tx_counter_of, session_number

ANOMALY_KINDS = (
    "forged_signature",  # SAM signature does not verify: card to the deny-list
    "replay",  # a card counter charged twice (another terminal, a cloned card)
    "sequence_reuse",  # one terminal sequence with two different contents
    "sequence_gap",  # a terminal sequence missing and not declared uncertain
    "card_counter_gap",  # a card counter missing (an event not uploaded yet); resolved when filled
    "chain_break",  # balance_before differs from the previous balance_after, no gap to explain it
    "ring_fence_violation",  # an aid purse spent outside its purpose
    "unexplained_movement",  # a credit by a session that does not credit, an unknown money purse
    "recovered_from_card_log",  # rebuilt from a card log; resolved when the original comes
    "batch_conflict",  # same batch id, different bytes (raised by the upload service)
)

_TAPS = cast(Table, Tap.__table__)
_LEDGER = cast(Table, LedgerEntry.__table__)
_ANOMALIES = cast(Table, Anomaly.__table__)
_GAPS = cast(Table, Gap.__table__)
_PURSE_STATES = cast(Table, PurseState.__table__)
_TAP_COLUMNS = (
    "terminal_id",
    "terminal_seq",
    "batch_row",
    "card_pseudonym",
    "card_tx_counter",
    "charged",
    "status",
    "kind",
    "application",
    "outcome",
    "resolution",
    "occurred_at",
    "product_code",
    "station_id",
    "school_uai",
    "operator_id",
    "movements",
    "sam_verified",
    "sam_serial",
    "sam_counter",
    "written_event",
    "record_digest",
)
_T_CHARGED = _TAP_COLUMNS.index("charged")
_T_STATUS = _TAP_COLUMNS.index("status")
_T_OPERATOR = _TAP_COLUMNS.index("operator_id")
_T_SAM_VERIFIED = _TAP_COLUMNS.index("sam_verified")
_T_SAM_SERIAL = _TAP_COLUMNS.index("sam_serial")
_T_SAM_COUNTER = _TAP_COLUMNS.index("sam_counter")
_LEDGER_COLUMNS = (
    "entry_ref",
    "line",
    "account",
    "amount",
    "occurred_at",
    "kind",
    "reverses",
    "posted_at",
)
_TERMINAL_STATES = cast(Table, TerminalState.__table__)

MAX_GAP_NUMBERS = 1000  # one jump larger than this is one anomaly, not a thousand gap rows
_PG_LOCK_KEY = 0x5256414C  # "RVAL": one validation loop at a time per database
# Page cache of the loop's SQLite connection: the card indexes of taps and the ledger take
# random inserts, which the default 2 MB cache turns into page reloads as the tables grow.
_SQLITE_CACHE_KIB = 262_144
_JSON_DECODE = msgspec.json.Decoder().decode
_SORTED_JSON = msgspec.json.Encoder(order="sorted")  # the bytes of json.dumps(sort_keys=True)
_CARD_MEMORY = 2_000_000  # card states the loop keeps between chunks (about 1 GB at most)


class _OtherLoopCommitted(Exception):
    """Another loop committed a chunk while this one computed its own (rolled back, redone)."""


@dataclass
class LoopReport:
    """What :meth:`ValidationLoop.run_once` did.

    Attributes:
        batches: batches processed.
        records: records read (including no-op duplicates).
        taps: tap rows written.
        posted: taps charged and posted to the ledger.
        anomalies: anomalies raised.
        ledger_lines: ledger lines written.
    """

    batches: int = 0
    records: int = 0
    taps: int = 0
    posted: int = 0
    anomalies: int = 0
    ledger_lines: int = 0

    def add(self, other: LoopReport) -> None:
        """Accumulate ``other`` into this report."""
        for name in ("batches", "records", "taps", "posted", "anomalies", "ledger_lines"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RevenueTables:
    """The small tariff tables the posting rules read (loaded once per run).

    Attributes:
        operators: station id -> operator id.
        trip_values: product code -> eurocents one counter trip is worth.
    """

    operators: dict[int, str] = field(default_factory=dict)
    trip_values: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> RevenueTables:
        """Read ``operator_stations`` and ``product_values``."""
        operators = {
            station: operator
            for station, operator in session.execute(
                select(OperatorStation.station_id, OperatorStation.operator_id)
            )
        }
        values = {
            code: value
            for code, value in session.execute(
                select(ProductValue.product_code, ProductValue.trip_value)
            )
        }
        return cls(operators, values)


@dataclass(slots=True)
class _CardState:
    """A card as the chunk knows it; every number here is a SESSION number (ascending).

    Stored as raw card counters (``purse_states``: ``last_counter`` and the purse marks), and
    converted when loaded (``_Chunk._prefetch``) and written (``_Chunk._flush_states``).
    """

    pseudonym: str
    last_session: int
    purses: dict[str, tuple[int, int]]  # purse -> (session number, balance_after)
    open_gaps: int
    stored: bool
    dirty: bool = False
    gaps: dict[int, _GapRow] | None = None  # by session number; loaded when open_gaps > 0


@dataclass
class _TerminalState:
    terminal_id: str
    last_seq: int
    open_gaps: int
    stored: bool
    dirty: bool = False
    gaps: dict[int, _GapRow] | None = None


@dataclass
class _GapRow:
    scope: str
    subject: str
    number: int  # as stored: terminal sequence, or raw card counter for the card scope
    state: str
    id: int | None = None
    closed_by: str | None = None
    changed: bool = False


@dataclass(slots=True)
class _CardView:
    """A card's sessions as the card rules need them (session numbers), loaded once per chunk.

    Attributes:
        originals: session -> movements of its charged original.
        recovered: sessions recovered from a card log whose original has not come.
        inferred: (recovered session, purse) -> amount its inference posts now (eurocents).
        breaks: ``chain_break`` pairs raised by this chunk: (older session, newer session, purse).
        stored_breaks: those raised by earlier chunks, read from ``anomalies`` when needed.
    """

    originals: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    recovered: set[int] = field(default_factory=set)
    inferred: dict[tuple[int, str], int] = field(default_factory=dict)
    breaks: set[tuple[int, int, str]] = field(default_factory=set)
    stored_breaks: set[tuple[int, int, str]] | None = None  # read when first needed


@dataclass(slots=True)
class _Charged:
    """A charged tap of a card session, as the chunk knows it."""

    status: str
    entry_ref: str
    movements: list[dict[str, Any]]


class ValidationLoop:
    """Processes stored upload batches in bulk (one transaction per chunk).

    Args:
        factory: session factory of the backend database.
        trace_keys: SAM traceable-signature keys (``KeyService`` in production).
        pseudonyms: card pseudonyms (``KeyService`` in production).
        chunk_records: records per transaction (a chunk ends on a batch boundary).
    """

    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _locks_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        factory: sessionmaker[Session],
        trace_keys: TraceKeyProvider,
        pseudonyms: CardPseudonymizer,
        *,
        chunk_records: int = 5000,
    ) -> None:
        """See the class docstring."""
        self._factory = factory
        self.preparer = RecordPreparer(trace_keys, pseudonyms)
        self.chunk_records = chunk_records
        self._checkpointer: SQLiteCheckpointer | None = None  # SQLite: WAL copied by a thread
        # Card states as the last chunk this loop committed left them (clean: no open gap),
        # valid while loop_state.generation is the one that chunk wrote.
        self._cards: dict[str, _CardState] = {}
        self._generation: int | None = None
        bind = factory.kw.get("bind")
        url = str(getattr(bind, "url", id(factory)))
        with ValidationLoop._locks_guard:
            self._lock = ValidationLoop._locks.setdefault(url, threading.Lock())

    def pending(self) -> int:
        """Number of stored batches not processed yet."""
        with self._factory() as session:
            return int(
                session.scalar(
                    select(func.count(UploadBatch.id)).where(UploadBatch.processed_at.is_(None))
                )
                or 0
            )

    def pending_records(self) -> int:
        """Number of records in the stored batches not processed yet."""
        with self._factory() as session:
            return int(
                session.scalar(
                    select(func.coalesce(func.sum(UploadBatch.record_count), 0)).where(
                        UploadBatch.processed_at.is_(None)
                    )
                )
                or 0
            )

    def run_once(self, max_chunks: int | None = None) -> LoopReport:
        """Process pending batches until none is left (or ``max_chunks`` chunks are done).

        One loop runs at a time per database in this process (a lock), and on PostgreSQL per
        database across processes (an advisory transaction lock).
        """
        report = LoopReport()
        with self._lock:
            done = 0
            while max_chunks is None or done < max_chunks:
                try:
                    with _cyclic_gc_paused():  # until the chunk's objects are freed
                        chunk = self._run_chunk()
                except _OtherLoopCommitted:
                    continue  # rolled back, memory dropped: the chunk is done again, fresh
                if chunk.batches == 0:
                    break
                report.add(chunk)
                done += 1
        return report

    def serve(
        self,
        stop: threading.Event,
        *,
        linger_s: float = 0.5,
        poll_s: float = 0.01,
        on_chunk: Callable[[LoopReport], None] | None = None,
    ) -> LoopReport:
        """Run as a dedicated worker until ``stop`` is set, then drain what is pending.

        Chunks are what make the loop fast (one transaction, bulk writes, card states kept
        between chunks), so the worker waits for a full chunk (``chunk_records`` pending) or
        for ``linger_s`` after it first saw something pending, whichever comes first: under
        load it works in full chunks, when quiet a record waits at most ``linger_s`` plus
        one chunk. The upload endpoint's own background run (``validation_auto``) stays for
        small deployments; a big one runs this (``regioncard backend loop``).

        Args:
            stop: set it to finish; what is pending then is processed before returning.
            linger_s: longest wait for a chunk to fill.
            poll_s: time between two looks at what is pending.
            on_chunk: called with the report of each chunk (progress, metrics).

        Returns:
            Everything processed.
        """
        report = LoopReport()
        waiting_since: float | None = None
        while True:
            stopping = stop.is_set()  # read before looking: nothing comes after a stop
            pending = self.pending_records()
            now = time.monotonic()
            if pending and waiting_since is None:
                waiting_since = now
            ready = pending >= self.chunk_records or (
                waiting_since is not None and now - waiting_since >= linger_s
            )
            if pending and (ready or stopping):
                chunk = self.run_once(max_chunks=None if stopping else 1)
                report.add(chunk)
                if on_chunk is not None and chunk.batches:
                    on_chunk(chunk)
                waiting_since = None
                continue
            if stopping:
                return report
            stop.wait(poll_s)

    def _run_chunk(self) -> LoopReport:
        bind = self._factory.kw.get("bind")
        if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
            with self._factory() as session:
                return self._chunk_transaction(session, session.get_bind().dialect.name)
        # The chunk's commit need not wait for fsync (WAL, synchronous=NORMAL): the batches
        # it reads are durable already (FULL when they were acknowledged), and a commit lost
        # to a power cut loses the chunk as a whole, processed_at included, so the chunk is
        # simply processed again. The WAL keeps commits in order. The connection is held for
        # the whole chunk and set back to FULL before it returns to the pool (uploads).
        if self._checkpointer is None:
            self._checkpointer = SQLiteCheckpointer(bind)
        checkpointing = self._checkpointer.keep_alive()
        with bind.connect() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.exec_driver_sql(f"PRAGMA cache_size={-_SQLITE_CACHE_KIB}")
            if checkpointing:
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            conn.commit()  # ends the autobegun (empty) transaction: the chunk commits its own
            try:
                with self._factory(bind=conn) as session:
                    return self._chunk_transaction(session, "sqlite")
            finally:
                if conn.in_transaction():
                    conn.rollback()
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")
                conn.commit()

    def _chunk_transaction(self, session: Session, dialect: str) -> LoopReport:
        try:
            return self._chunk_transaction_once(session, dialect)
        except BaseException:
            self._cards.clear()
            self._generation = None
            raise

    def _chunk_transaction_once(self, session: Session, dialect: str) -> LoopReport:
        with session.begin():
            if dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            generation = self._read_generation(session)
            if generation is None or generation != self._generation:
                self._cards.clear()  # another loop committed since: what memory holds is stale
            pending = session.execute(
                select(UploadBatch.id, UploadBatch.record_count)
                .where(UploadBatch.processed_at.is_(None))
                .order_by(UploadBatch.id)
                .limit(max(1, self.chunk_records))
            ).all()
            ids: list[int] = []
            total = 0
            for row_id, count in pending:
                if ids and total + count > self.chunk_records:
                    break
                ids.append(row_id)
                total += count
            if not ids:
                return LoopReport()
            bodies = {
                row_id: (bytes(body), None if prepared is None else bytes(prepared))
                for row_id, body, prepared in session.execute(
                    select(UploadBody.batch_row, UploadBody.body, UploadBody.prepared).where(
                        UploadBody.batch_row.in_(ids)
                    )
                )
            }
            chosen = [(row_id, *bodies[row_id]) for row_id in ids]
            chunk = _Chunk(self, session, RevenueTables.load(session))
            # Until this chunk commits; a failure drops the memory (_chunk_transaction), since
            # the chunk changes the remembered states in place.
            self._generation = None
            report = chunk.process(chosen)
            session.execute(
                update(UploadBatch).where(UploadBatch.id.in_(ids)).values(processed_at=chunk.now)
            )
            if generation is None:
                session.add(LoopState(id=1, generation=1))
                session.flush()  # a concurrent first chunk fails here (primary key)
            else:
                # Compare and swap, inside the write transaction: on SQLite the reads above
                # ran before it took the write lock, so another loop may have committed
                # since; then this chunk was computed from stale states.
                swapped = session.execute(
                    update(LoopState)
                    .where(LoopState.id == 1, LoopState.generation == generation)
                    .values(generation=generation + 1)
                )
                if cast(CursorResult[Any], swapped).rowcount != 1:
                    raise _OtherLoopCommitted
        # Committed: keep the states the chunk left, when they need nothing from the database.
        self._remember(chunk.cards)
        self._generation = 1 if generation is None else generation + 1
        return report

    def _read_generation(self, session: Session) -> int | None:
        return session.scalar(select(LoopState.generation).where(LoopState.id == 1))

    def _remember(self, cards: dict[str, _CardState]) -> None:
        if len(self._cards) + len(cards) > _CARD_MEMORY:
            self._cards.clear()
        for pseudonym, state in cards.items():
            if state.open_gaps:
                self._cards.pop(pseudonym, None)  # its gap rows are read from the database
                continue
            state.stored = True
            state.dirty = False
            state.gaps = None
            self._cards[pseudonym] = state


class _Chunk:
    """The work of one transaction: decoded batches in, bulk rows out."""

    def __init__(self, loop: ValidationLoop, session: Session, revenue: RevenueTables) -> None:
        self.loop = loop
        self.session = session
        self.conn: Connection = session.connection()
        self.revenue = revenue
        self.now = utcnow()
        self.sqlite = self.conn.dialect.name == "sqlite"
        self.now_db: Any = _sqlite_time(self.now) if self.sqlite else self.now
        self.report = LoopReport()
        self.taps: list[list[Any]] = []  # rows in _TAP_COLUMNS order
        self.ledger: list[tuple[Any, ...]] = []  # in _LEDGER_COLUMNS order
        self.anomalies: list[dict[str, Any]] = []
        self.resolutions: list[dict[str, Any]] = []  # anomalies stored earlier, now explained
        self.deny: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, _CardState] = {}
        self.terminals: dict[str, _TerminalState] = {}
        self.charged: dict[tuple[str, int], _Charged] = {}
        self.views: dict[str, _CardView] = {}  # cards that needed the card rules, this chunk
        self.breaks: dict[str, set[tuple[int, int, str]]] = {}  # chain_break pairs raised
        self.recovered_rows: dict[tuple[str, int], list[Any]] = {}  # recovered, this chunk
        self.uncharge: list[dict[str, Any]] = []  # stored recovered taps whose original came
        self.new_gaps: list[_GapRow] = []
        self.ledger_lines_by_ref: dict[str, list[tuple[str, int]]] = {}
        self.seen: dict[tuple[str, int], str] = {}  # (terminal, seq) -> digest, this chunk
        self.fit = TerminalFit(self.conn)
        self.registrations = Registrations.load(session)  # partner readers and shop tills

    # -- driver ---------------------------------------------------------------------------

    def process(self, batches: list[tuple[int, bytes, bytes | None]]) -> LoopReport:
        decoded = []
        preparer = self.loop.preparer
        for row_id, body, stored in batches:
            batch = _JSON_DECODE(body)["batch"]
            records = batch["records"]
            prepared = None
            if stored is not None:
                try:
                    prepared = decode_prepared(stored, records)
                except PreparedMismatch:
                    prepared = None  # prepared again below, from the batch itself
            if prepared is None:
                prepared = preparer.prepare(records)
            for record, prep in zip(records, prepared, strict=True):
                stamp = record["occurred_at"]
                # The time as the database column takes it; on SQLite the text SQLAlchemy
                # writes (naive UTC, microseconds), sliced from the canonical "...T...Z".
                record["_at_db"] = (
                    f"{stamp[:10]} {stamp[11:23]}000"
                    if self.sqlite
                    else datetime.fromisoformat(stamp)
                )
                record["_card"] = prep[5]
                record["_prep"] = prep
            decoded.append((row_id, batch))
        self._prefetch(decoded)
        for row_id, batch in decoded:
            self._process_batch(row_id, batch)
        self._flush()
        self.report.batches = len(batches)
        return self.report

    def _prefetch(self, decoded: list[tuple[int, dict[str, Any]]]) -> None:
        memory = self.loop._cards
        pseudonyms = []
        for card in {r["_card"] for _, b in decoded for r in b["records"]}:
            state = memory.get(card)
            if state is None:
                pseudonyms.append(card)
            else:
                self.cards[card] = state
        pseudonyms.sort()
        terminals = sorted({b["terminal_id"] for _, b in decoded})
        for card, last, purses, open_gaps in self._select_in(
            "SELECT card_pseudonym, last_counter, purses, open_gaps FROM purse_states",
            "card_pseudonym",
            pseudonyms,
        ):
            self.cards[card] = _CardState(
                card,
                session_number(last),
                {
                    purse: (session_number(counter), balance)
                    for purse, (counter, balance) in _JSON_DECODE(purses).items()
                },
                open_gaps,
                True,
            )
        for terminal_id, last_seq, gaps in self._select_in(
            "SELECT terminal_id, last_seq, open_gaps FROM terminal_states",
            "terminal_id",
            terminals,
        ):
            self.terminals[terminal_id] = _TerminalState(terminal_id, last_seq, gaps, True)

    def _select_in(self, query: str, column: str, keys: list[str]) -> Iterable[Any]:
        """Rows of ``query`` whose ``column`` is one of ``keys``, with ONE bound parameter.

        A chunk looks up thousands of keys: compiling an ``IN`` of that many bound parameters
        cost more than the lookup. SQLite reads them from a JSON array (``json_each``),
        PostgreSQL from an array (``= ANY``); other databases get the Core ``IN``.
        """
        if not keys:
            return []
        dialect = self.conn.dialect.name
        driver = self.conn.connection.driver_connection
        if dialect == "sqlite" and driver is not None:
            cursor = driver.cursor()
            try:
                return cursor.execute(
                    f"{query} WHERE {column} IN (SELECT value FROM json_each(?))",
                    (_SORTED_JSON.encode(keys).decode(),),
                ).fetchall()
            finally:
                cursor.close()
        if dialect == "postgresql" and driver is not None:
            with driver.cursor() as cursor:
                return cursor.execute(f"{query} WHERE {column} = ANY(%s)", (keys,)).fetchall()
        rows: list[Any] = []
        for key_chunk in _chunks(keys, 500):
            rows.extend(
                self.conn.execute(
                    text(f"{query} WHERE {column} IN :keys").bindparams(
                        bindparam("keys", expanding=True)
                    ),
                    {"keys": key_chunk},
                )
            )
        return rows

    # -- one batch ------------------------------------------------------------------------

    def _process_batch(self, row_id: int, batch: dict[str, Any]) -> None:
        terminal_id = batch["terminal_id"]
        records = batch["records"]
        state = self.terminals.get(terminal_id)
        known: dict[int, str | None] = {}
        if state is not None and batch["first_seq"] <= state.last_seq:
            known = {
                cast(int, seq): digest
                for seq, digest in self.conn.execute(
                    select(Tap.terminal_seq, Tap.record_digest).where(
                        Tap.terminal_id == terminal_id,
                        Tap.terminal_seq.between(batch["first_seq"], batch["last_seq"]),
                    )
                )
            }
        received = []
        for record in records:
            self.report.records += 1
            seq = record["terminal_seq"]
            digest = record["_prep"][0]
            received.append(seq)
            previous = known.get(seq, self.seen.get((terminal_id, seq)))
            if previous is not None or seq in known:
                if previous != digest:
                    self._anomaly(
                        "sequence_reuse",
                        record,
                        f"terminal sequence {seq} already stored with other content",
                        batch_id=batch["batch_id"],
                    )
                continue
            self.seen[(terminal_id, seq)] = digest
            self._process_record(row_id, record, digest)
        self._terminal_gaps(batch, received)

    # -- one record -----------------------------------------------------------------------

    def _process_record(self, row_id: int, record: dict[str, Any], digest: str) -> None:
        card = record["_card"]
        tap = self._tap_row(row_id, record, digest)
        _, sam, sam_serial, sam_counter, detail, _ = record["_prep"]
        if sam == SAM_FORGED:
            tap[_T_STATUS] = TapStatus.FORGED
            self._anomaly("forged_signature", record, detail)
            self._deny(record, "forged_signature")
            self.taps.append(tap)
            return
        if sam == SAM_VERIFIED:
            tap[_T_SAM_VERIFIED] = True
            tap[_T_SAM_SERIAL] = sam_serial
            tap[_T_SAM_COUNTER] = sam_counter
        violation = self.registrations.violation(record)
        if violation is not None:
            tap[_T_STATUS] = TapStatus.KIND_VIOLATION
            self._anomaly("kind_violation", record, violation)
            self.taps.append(tap)
            return
        if record["outcome"] != "COMMITTED":
            tap[_T_STATUS] = TapStatus.ABORTED
            self.taps.append(tap)
            return
        counter = record["card_tx_counter"]  # dedup key: raw, as the card said
        number = session_number(counter)  # order: Calypso counters count down
        state = self.cards.get(card)
        view = self.views.get(card)
        existing = self.charged.get((card, counter))
        if existing is None and state is not None and number <= state.last_session:
            view = self._view(state)  # the card's charged sessions, read once per chunk
            existing = self.charged.get((card, counter))
        entry_ref = f"tap:{record['terminal_id']}:{record['terminal_seq']}"
        if existing is not None and existing.status != TapStatus.RECOVERED:
            # Charged once: whatever arrives after the charged original (a replay, a copy,
            # the original of a session whose recovery it already confirmed) is a replay.
            tap[_T_STATUS] = TapStatus.REPLAY
            self.taps.append(tap)
            self._anomaly(
                "replay", record, f"card counter {counter} already charged by {existing.entry_ref}"
            )
            return
        if state is None:
            state = self.cards[card] = _CardState(card, number, {}, 0, False, True)
        elif (
            view is not None
            or existing is not None
            or state.open_gaps
            or number != state.last_session + 1
        ):
            self._card_rules(state, record, tap, entry_ref)
            return
        else:
            self._check_chain_forward(state, record)
        movements = record["movements"]
        for movement in movements:
            state.purses[movement["purse"]] = (number, movement["balance_after"])
        state.last_session = number
        state.dirty = True
        tap[_T_CHARGED] = True
        tap[_T_STATUS] = TapStatus.POSTED
        self.taps.append(tap)
        self.charged[(card, counter)] = _Charged(TapStatus.POSTED, entry_ref, movements)
        self.report.posted += 1
        self._post(entry_ref, self._posting_lines(record, tap), record["_at_db"], "tap")

    def _tap_row(self, row_id: int, record: dict[str, Any], digest: str) -> list[Any]:
        """The ``taps`` row of ``record``, in :data:`_TAP_COLUMNS` order, not charged yet."""
        station = record["station_id"]
        movements = record["movements"]
        return [
            record["terminal_id"],
            record["terminal_seq"],
            row_id,
            record["_card"],
            record["card_tx_counter"],
            False,  # charged
            "",  # status
            record["kind"],
            record["application"],
            record["outcome"],
            record["resolution"],
            record["_at_db"],
            record["product_code"],
            station,
            record["school_uai"],
            None if station is None else self.revenue.operators.get(station),
            _SORTED_JSON.encode(movements).decode() if movements else "[]",
            False,  # sam_verified
            None,  # sam_serial
            None,  # sam_counter
            record["written_event"],
            digest,
        ]

    def _posting_lines(self, record: dict[str, Any], tap: list[Any]) -> list[tuple[str, int]]:
        misfit = self.fit.check(record, tap[_T_SAM_SERIAL])  # kind and SAM (terminal_fit)
        if misfit is not None:
            self._anomaly(misfit.kind, record, misfit.detail)
        movements = record["movements"]
        if not movements:
            return []
        product = record["product_code"]
        ctx = SessionContext(
            kind=record["kind"],
            card=record["_card"],
            terminal_id=record["terminal_id"],
            operator_id=tap[_T_OPERATOR],
            school_uai=record["school_uai"],
            trip_value=0 if product is None else self.revenue.trip_values.get(product, 0),
        )
        posting = session_posting(ctx, movements)
        if misfit is not None:
            return suspended(misfit, posting.lines)
        if posting.violation is not None:
            kind = "ring_fence_violation" if "ring-fenced" in posting.violation else None
            self._anomaly(kind or "unexplained_movement", record, posting.violation)
        return posting.lines

    def _post(
        self,
        entry_ref: str,
        lines: list[tuple[str, int]],
        occurred_at: Any,
        kind: str,
        reverses: str | None = None,
    ) -> None:
        """Append the lines of one entry; ``occurred_at`` as the database takes it."""
        if not lines:
            return
        self.ledger_lines_by_ref[entry_ref] = lines
        now = self.now_db
        self.ledger.extend(
            [
                (entry_ref, index, account, amount, occurred_at, kind, reverses, now)
                for index, (account, amount) in enumerate(lines)
            ]
        )

    # -- a card's sessions: charged once, gaps, card-log recovery, purse chains -------------

    def _check_chain_forward(self, state: _CardState, record: dict[str, Any]) -> None:
        """The card's next session, no gap and no recovered session open: chain from the last."""
        number = session_number(record["card_tx_counter"])
        for movement in record["movements"]:
            purse = movement["purse"]
            mark = state.purses.get(purse)
            if mark is None or mark[1] == movement["balance_before"]:
                continue
            self._chain_break(
                state.pseudonym, record, purse, (mark[0], _moved(mark[1])), (number, movement)
            )

    def _view(self, state: _CardState) -> _CardView:
        """The card's sessions as the card rules need them, read once per chunk."""
        card = state.pseudonym
        view = self.views.get(card)
        if view is not None:
            return view
        view = _CardView()
        rows = self.conn.execute(
            select(
                Tap.card_tx_counter, Tap.status, Tap.movements, Tap.terminal_id, Tap.terminal_seq
            ).where(Tap.card_pseudonym == card, Tap.charged.is_(True))
        )
        for counter, status, movements, terminal_id, seq in rows:
            if (card, counter) in self.charged:
                continue  # this chunk's word is newer (a recovered tap confirmed, say)
            ref = f"rec:{card}:{counter}" if terminal_id is None else f"tap:{terminal_id}:{seq}"
            self.charged[(card, counter)] = _Charged(status, ref, json.loads(movements))
        for (pseudonym, counter), charged in self.charged.items():
            if pseudonym != card:
                continue
            if charged.status == TapStatus.RECOVERED:
                view.recovered.add(session_number(counter))
            else:
                view.originals[session_number(counter)] = charged.movements
        if view.recovered:
            refs = {f"rec:{card}:{card_tx_counter_of(n)}": n for n in view.recovered}
            prefix = f"card:{card}:"
            for ref, account, amount in self.conn.execute(
                select(LedgerEntry.entry_ref, LedgerEntry.account, LedgerEntry.amount).where(
                    LedgerEntry.entry_ref.in_(list(refs))
                )
            ):
                if account.startswith(prefix):
                    key = (refs[ref], account[len(prefix) :])
                    view.inferred[key] = view.inferred.get(key, 0) + amount
        view.breaks = set(self.breaks.get(card, ()))
        self.views[card] = view
        return view

    def _card_rules(
        self, state: _CardState, record: dict[str, Any], tap: list[Any], entry_ref: str
    ) -> None:
        """A session that is not simply the card's next one (docs/validation-loop.md).

        The card's state is derived from the set of sessions known, whatever their order:
        originals (charged), sessions recovered from a card log (charged against suspense until
        their original comes), and gaps (sessions between the first and the last original,
        neither received nor recovered). The purse chains are checked between consecutive
        originals of each purse; a difference across recovered sessions (and no gap) is the
        inferred movement of the oldest of them, corrected as originals arrive.
        """
        card = state.pseudonym
        view = self._view(state)
        gaps = self._card_gaps(state)
        counter = record["card_tx_counter"]
        number = session_number(counter)
        movements = record["movements"]
        tap[_T_CHARGED] = True
        rec_ref = f"rec:{card}:{counter}"
        if number in view.recovered:
            # The original of a recovered session: it replaces the recovery (which is no longer
            # charged: the database's one-charge-per-session index holds), its posting reverses
            # the inference and posts the real movements.
            tap[_T_STATUS] = TapStatus.CONFIRMS_RECOVERED
            view.recovered.discard(number)
            self._uncharge_recovered(card, counter)
            lines = [
                (card_account(card, purse), -amount)
                for purse, amount in _pop_inferred(view, number)
            ]
            lines += [(SUSPENSE_CARD_LOG, -amount) for _, amount in lines]
            lines += self._posting_lines(record, tap)
            self._post(entry_ref, _net(lines), record["_at_db"], "correction", rec_ref)
            self._resolve(
                "recovered_from_card_log",
                {"card_pseudonym": card, "card_tx_counter": counter},
                f"original arrived: {entry_ref}",
            )
            gap = gaps.get(number)
            if gap is not None and gap.closed_by is None:
                self._close_gap(gap, "record")
                state.open_gaps -= 1
            status = TapStatus.CONFIRMS_RECOVERED
        else:
            tap[_T_STATUS] = TapStatus.POSTED
            self._post(entry_ref, self._posting_lines(record, tap), record["_at_db"], "tap")
            gap = gaps.get(number)
            if gap is not None and gap.closed_by is None:
                self._close_gap(gap, "record")
                state.open_gaps -= 1
                self._resolve_card_gap(
                    card, number, f"received from {record['terminal_id']}:{record['terminal_seq']}"
                )
            status = TapStatus.POSTED
        self.taps.append(tap)
        self.report.posted += 1
        self.charged[(card, counter)] = _Charged(status, entry_ref, movements)
        known = sorted(view.originals)
        low, high = (known[0], known[-1]) if known else (number, number)
        view.originals[number] = movements
        # This session's card log first: the sessions it names that are known neither as
        # originals nor as recovered, above the card's first original, are recovered (so they
        # are never reported as gaps in between).
        first = min(low, number)
        for index, event in enumerate(record["last_events"]):
            missing = number - 1 - index
            if missing <= first:
                break
            if missing in view.originals or missing in view.recovered:
                continue
            self._recover(state, view, record, missing, event)
        # Gaps: every session between the first and the last original that is neither an
        # original nor recovered, whatever the order of arrival (only the new span is new).
        if number > high:
            self._open_card_gaps(state, view, record, high + 1, number - 1)
        elif number < low:
            self._open_card_gaps(state, view, record, number + 1, low - 1)
        self._chains(state, view, record)
        state.last_session = max(state.last_session, number)
        state.purses = _marks(view.originals)
        state.dirty = True

    def _uncharge_recovered(self, card: str, counter: int) -> None:
        """The recovered tap of a session whose original arrived is no longer the charged one."""
        row = self.recovered_rows.pop((card, counter), None)
        if row is not None:
            row[_T_CHARGED] = False  # recovered in this chunk: not written yet
        else:
            self.uncharge.append({"b_card": card, "b_counter": counter})

    def _recover(
        self,
        state: _CardState,
        view: _CardView,
        record: dict[str, Any],
        number: int,
        event: str,
    ) -> None:
        """Session ``number`` is known from the card log read by ``record``: a recovered tap."""
        card = state.pseudonym
        counter = card_tx_counter_of(number)
        gaps = self._card_gaps(state)
        gap = gaps.get(number)
        if gap is not None and gap.closed_by is None:
            # Still open (a recovered session is not settled) but no longer unexplained.
            gap.state = "recovered"
            gap.changed = True
            self._resolve_card_gap(state.pseudonym, number, "recovered from a card log")
        elif gap is None:
            gap = _GapRow("card", card, counter, "recovered")
            gaps[number] = gap
            self.new_gaps.append(gap)
            state.open_gaps += 1
        view.recovered.add(number)
        row = [
            None,  # terminal_id
            None,  # terminal_seq
            None,  # batch_row
            card,
            counter,
            True,  # charged
            TapStatus.RECOVERED,
            "card_log",  # kind
            record["application"],
            "COMMITTED",  # outcome
            "recovered_from_card",  # resolution
            record["_at_db"],
            None,  # product_code
            None,  # station_id
            None,  # school_uai
            None,  # operator_id
            "[]",  # movements: inferred from the purse chains, in the ledger (rec:...)
            False,  # sam_verified
            None,  # sam_serial
            None,  # sam_counter
            event,  # written_event: the log bytes
            None,  # record_digest
        ]
        self.taps.append(row)
        self.recovered_rows[(card, counter)] = row
        self.charged[(card, counter)] = _Charged(TapStatus.RECOVERED, f"rec:{card}:{counter}", [])
        self._anomaly(
            "recovered_from_card_log",
            record,
            f"card counter {counter} rebuilt from the card log read at "
            f"{record['terminal_id']}:{record['terminal_seq']}",
            card_tx_counter=counter,
        )

    def _chains(self, state: _CardState, view: _CardView, record: dict[str, Any]) -> None:
        """Check every purse chain of the card; post the inferred movements' changes.

        Between two consecutive originals of a purse, a difference is: explained later when
        a gap lies between them; the inferred movement of the OLDEST recovered session between
        them when there is one (and no gap); a ``chain_break`` otherwise (raised once per pair).
        """
        card = state.pseudonym
        missing = sorted(
            n
            for n, g in self._card_gaps(state).items()
            if g.closed_by is None and g.state == "missing"
        )
        recovered = sorted(view.recovered)
        target: dict[tuple[int, str], int] = {}
        units: dict[str, str] = {}
        by_purse: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for number in sorted(view.originals):
            for movement in view.originals[number]:
                by_purse.setdefault(movement["purse"], []).append((number, movement))
                units[movement["purse"]] = movement["unit"]
        for purse, chain in by_purse.items():
            money = units[purse] == "eurocent"
            for (low, before), (high, after) in itertools.pairwise(chain):
                difference = after["balance_before"] - before["balance_after"]
                if not difference:
                    continue
                if _any_between(missing, low, high):
                    continue  # a session not received yet: checked again when it comes
                inside = _first_between(recovered, low, high)
                if inside is not None:
                    if money:  # a count purse's inference is not valued
                        target[(inside, purse)] = difference
                elif (low, high, purse) not in view.breaks and (
                    (low, high, purse) not in self._stored_breaks(card, view)
                ):
                    self._chain_break(card, record, purse, (low, before), (high, after))
                    view.breaks.add((low, high, purse))
        for key in set(target) | set(view.inferred):
            change = target.get(key, 0) - view.inferred.get(key, 0)
            if not change:
                continue
            number, purse = key
            view.inferred[key] = target.get(key, 0)
            ref = f"rec:{card}:{card_tx_counter_of(number)}"
            lines = [(card_account(card, purse), change), (SUSPENSE_CARD_LOG, -change)]
            self._post(ref, lines, record["_at_db"], "recovered")

    def _stored_breaks(self, card: str, view: _CardView) -> set[tuple[int, int, str]]:
        """The card's ``chain_break`` pairs raised by earlier chunks (read when first needed)."""
        if view.stored_breaks is None:
            view.stored_breaks = {
                key
                for key in (
                    _break_key(counter, detail)
                    for counter, detail in self.conn.execute(
                        select(Anomaly.card_tx_counter, Anomaly.detail).where(
                            Anomaly.kind == "chain_break", Anomaly.card_pseudonym == card
                        )
                    )
                )
                if key is not None
            }
        return view.stored_breaks

    def _chain_break(
        self,
        card: str,
        record: dict[str, Any],
        purse: str,
        low: tuple[int, dict[str, Any]],
        high: tuple[int, dict[str, Any]],
    ) -> None:
        """``chain_break`` between consecutive sessions ``low`` and ``high`` of ``purse``.

        Filed under the arriving record when it is the older session (its detail names the
        newer one), under the newer session otherwise; :func:`_break_key` reads the pair back.
        """
        (n_low, m_low), (n_high, m_high) = low, high
        if session_number(record["card_tx_counter"]) == n_low:
            counter = card_tx_counter_of(n_low)
            detail = (
                f"{purse}: balance after {m_low['balance_after']} but the session at counter "
                f"{card_tx_counter_of(n_high)} started from {m_high['balance_before']}"
            )
        else:
            counter = card_tx_counter_of(n_high)
            detail = (
                f"{purse}: balance before {m_high['balance_before']} but the session at "
                f"counter {card_tx_counter_of(n_low)} left {m_low['balance_after']}"
            )
        self.breaks.setdefault(card, set()).add((n_low, n_high, purse))
        self._anomaly("chain_break", record, detail, card_tx_counter=counter)

    def _card_gaps(self, state: _CardState) -> dict[int, _GapRow]:
        """The card's open gaps by session number (the rows keep the raw counter)."""
        if state.gaps is None:
            state.gaps = {}
            if state.open_gaps:
                state.gaps = {
                    session_number(counter): gap
                    for counter, gap in self._load_gaps("card", state.pseudonym).items()
                }
        return state.gaps

    def _load_gaps(self, scope: str, subject: str) -> dict[int, _GapRow]:
        rows = self.conn.execute(
            select(Gap.id, Gap.number, Gap.state).where(
                Gap.scope == scope, Gap.subject == subject, Gap.closed_at.is_(None)
            )
        )
        return {
            number: _GapRow(scope, subject, number, gap_state, id=gap_id)
            for gap_id, number, gap_state in rows
        }

    def _open_card_gaps(
        self, state: _CardState, view: _CardView, record: dict[str, Any], first: int, last: int
    ) -> None:
        """Sessions ``first`` to ``last`` (session numbers) not received nor recovered: gaps."""
        if last < first:
            return
        gaps = self._card_gaps(state)
        seen = f"counters {card_tx_counter_of(first - 1)} then {card_tx_counter_of(last + 1)}"
        if last - first + 1 > MAX_GAP_NUMBERS:
            self._anomaly(
                "card_counter_gap",
                record,
                f"{last - first + 1} card sessions missing at once ({seen}): "
                "not tracked number by number",
            )
            return
        for number in range(first, last + 1):
            if number in gaps or number in view.recovered or number in view.originals:
                continue
            counter = card_tx_counter_of(number)
            gap = _GapRow("card", state.pseudonym, counter, "missing")
            gaps[number] = gap
            self.new_gaps.append(gap)
            state.open_gaps += 1
            self._anomaly(
                "card_counter_gap",
                record,
                f"card counter {counter} not received ({seen})",
                card_tx_counter=counter,
            )

    def _close_gap(self, gap: _GapRow, by: str) -> None:
        gap.closed_by = by
        gap.changed = True

    def _resolve_card_gap(self, card: str, number: int, how: str) -> None:
        """Resolve the ``card_counter_gap`` of session ``number`` (stored under its counter)."""
        self._resolve(
            "card_counter_gap",
            {"card_pseudonym": card, "card_tx_counter": card_tx_counter_of(number)},
            how,
        )

    # -- terminal sequence gaps -------------------------------------------------------------

    def _terminal_gaps(self, batch: dict[str, Any], received: list[int]) -> None:
        terminal_id = batch["terminal_id"]
        uncertain = {u["terminal_seq"] for u in batch["uncertain"]}
        state = self.terminals.get(terminal_id)
        if state is None:
            # First batch of this terminal: nothing is known before its first record.
            state = _TerminalState(terminal_id, batch["first_seq"] - 1, 0, False, True)
            self.terminals[terminal_id] = state
        if state.gaps is None:
            state.gaps = self._load_gaps("terminal", terminal_id) if state.open_gaps else {}
        gaps = state.gaps
        got = set(received)
        for number, gap in gaps.items():
            if gap.closed_by is not None:
                continue
            if number in got:
                self._close_gap(gap, "record")
                state.open_gaps -= 1
                if gap.state == "missing":
                    self._resolve(
                        "sequence_gap",
                        {"terminal_id": terminal_id, "terminal_seq": number},
                        f"received in {batch['batch_id']}",
                    )
            elif gap.state == "uncertain" and number not in uncertain:
                gap.state = "missing"
                gap.changed = True
                self._terminal_anomaly(
                    batch, number, "was declared uncertain, is neither uncertain nor received now"
                )
        top = max([state.last_seq, batch["last_seq"], *uncertain])
        missing = [n for n in range(state.last_seq + 1, top + 1) if n not in got]
        if len(missing) > MAX_GAP_NUMBERS:
            self._terminal_anomaly(
                batch, state.last_seq + 1, f"{len(missing)} terminal sequences missing at once"
            )
            missing = []
        for number in missing:
            gap_state = "uncertain" if number in uncertain else "missing"
            gap = _GapRow("terminal", terminal_id, number, gap_state)
            gaps[number] = gap
            self.new_gaps.append(gap)
            state.open_gaps += 1
            if gap_state == "missing":
                self._terminal_anomaly(batch, number, "missing and not declared uncertain")
        if top != state.last_seq or missing:
            state.last_seq = top
            state.dirty = True
        if any(g.changed for g in gaps.values()):
            state.dirty = True

    def _terminal_anomaly(self, batch: dict[str, Any], number: int, why: str) -> None:
        self.anomalies.append(
            {
                "kind": "sequence_gap",
                "terminal_id": batch["terminal_id"],
                "terminal_seq": number,
                "card_pseudonym": None,
                "card_tx_counter": None,
                "batch_id": batch["batch_id"],
                "detail": f"terminal sequence {number} {why}",
                "detected_at": self.now,
                "resolved_at": None,
                "resolution": None,
            }
        )
        self.report.anomalies += 1

    # -- anomalies and the deny-list ---------------------------------------------------------

    def _anomaly(
        self,
        kind: str,
        record: dict[str, Any],
        detail: str,
        *,
        card_tx_counter: int | None = None,
        batch_id: str | None = None,
    ) -> None:
        self.anomalies.append(
            {
                "kind": kind,
                "terminal_id": record["terminal_id"],
                "terminal_seq": record["terminal_seq"],
                "card_pseudonym": record["_card"],
                "card_tx_counter": record["card_tx_counter"]
                if card_tx_counter is None
                else card_tx_counter,
                "batch_id": batch_id,
                "detail": detail,
                "detected_at": self.now,
                "resolved_at": None,
                "resolution": None,
            }
        )
        self.report.anomalies += 1

    def _resolve(self, kind: str, where: dict[str, Any], how: str) -> None:
        """Mark the open anomaly ``kind`` matching ``where`` explained (this chunk's or stored)."""
        for anomaly in self.anomalies:
            if (
                anomaly["kind"] == kind
                and anomaly["resolved_at"] is None
                and all(anomaly[k] == v for k, v in where.items())
            ):
                anomaly["resolved_at"] = self.now
                anomaly["resolution"] = how
                return
        self.resolutions.append({"kind": kind, **where, "how": how})

    def _deny(self, record: dict[str, Any], reason: str) -> None:
        serial = record["card_serial"]
        if serial not in self.deny:
            self.deny[serial] = {
                "card_serial": serial,
                "card_pseudonym": record["_card"],
                "reason": reason,
                "detail": f"{record['terminal_id']}:{record['terminal_seq']}",
                "created_at": self.now,
                "listed_at": None,
            }

    # -- bulk writes --------------------------------------------------------------------------

    def _bulk_insert(
        self,
        table: Table,
        rows: list[dict[str, Any]] | list[tuple[Any, ...]] | list[list[Any]],
        columns: tuple[str, ...] | None = None,
    ) -> None:
        """Insert ``rows`` the fastest way the driver offers.

        ``rows`` are dicts with the same keys, or tuples of ``columns`` (times already as the
        database takes them: :attr:`_Chunk.now_db`, ``record["_at_db"]``).

        Profiling showed SQLAlchemy's per-row parameter processing costing more than the
        database work, so the rows go straight to the driver: ``executemany`` on SQLite (times
        in the format SQLAlchemy reads back), ``COPY FROM STDIN`` on PostgreSQL. Any other
        database gets a Core ``insert`` executemany.
        """
        if not rows:
            return
        ready = columns is not None  # tuples built by the chunk: times already converted
        if columns is None:
            first = rows[0]
            assert isinstance(first, dict)
            columns = tuple(first)
            getter = itemgetter(*columns)
            values: list[Any] = [getter(row) for row in rows]
            if len(columns) == 1:
                values = [(value,) for value in values]
        else:
            values = rows
        names = ", ".join(columns)
        dialect = self.conn.dialect.name
        driver = self.conn.connection.driver_connection
        if dialect == "sqlite" and driver is not None:
            times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
            if times and not ready:
                values = [_sqlite_times(row, times) for row in values]
            marks = ", ".join("?" * len(columns))
            cursor = driver.cursor()
            try:
                cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", values)
            finally:
                cursor.close()
        elif dialect == "postgresql" and driver is not None:
            with (
                driver.cursor() as cursor,
                cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
            ):
                for row in values:
                    copy.write_row(row)
        else:
            self.conn.execute(
                insert(table), [dict(zip(columns, row, strict=True)) for row in values]
            )

    def _bulk_update(
        self, table: Table, key: str, columns: tuple[str, ...], rows: list[dict[str, Any]]
    ) -> None:
        """``UPDATE table SET columns WHERE key = ...`` for each of ``rows`` (plain values).

        Straight to the driver's ``executemany`` on SQLite and PostgreSQL (psycopg pipelines
        it), for the same reason as :meth:`_bulk_insert`; a Core ``update`` elsewhere.
        """
        dialect = self.conn.dialect.name
        driver = self.conn.connection.driver_connection
        if dialect in ("sqlite", "postgresql") and driver is not None:
            mark = "?" if dialect == "sqlite" else "%s"
            assignments = ", ".join(f"{c} = {mark}" for c in columns)
            getter = itemgetter(*columns, key)
            cursor = driver.cursor()
            try:
                cursor.executemany(
                    f"UPDATE {table.name} SET {assignments} WHERE {key} = {mark}",
                    [getter(row) for row in rows],
                )
            finally:
                cursor.close()
            return
        self.conn.execute(
            update(table)
            .where(table.c[key] == bindparam(f"b_{key}"))
            .values({c: bindparam(f"b_{c}") for c in columns}),
            [{f"b_{c}": row[c] for c in (*columns, key)} for row in rows],
        )

    def _flush(self) -> None:
        if self.uncharge:  # before the inserts: one charged tap per card session (unique index)
            self.conn.execute(
                update(_TAPS)
                .where(
                    _TAPS.c.card_pseudonym == bindparam("b_card"),
                    _TAPS.c.card_tx_counter == bindparam("b_counter"),
                    _TAPS.c.status == TapStatus.RECOVERED,
                )
                .values(charged=False),
                self.uncharge,
            )
        self._bulk_insert(_TAPS, self.taps, _TAP_COLUMNS)
        self._bulk_insert(_LEDGER, self.ledger, _LEDGER_COLUMNS)
        self._bulk_insert(_ANOMALIES, self.anomalies)
        self._flush_resolutions()
        self._flush_deny()
        self._flush_gaps()
        self._flush_states()
        self.report.taps = len(self.taps)
        self.report.ledger_lines = len(self.ledger)

    def _flush_resolutions(self) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for item in self.resolutions:
            groups.setdefault(tuple(sorted(item)), []).append(item)
        table = _ANOMALIES
        for keys, items in groups.items():
            conditions = [
                table.c[k] == bindparam(f"b_{k}") for k in keys if k not in ("kind", "how")
            ]
            statement = (
                update(table)
                .where(
                    table.c.kind == bindparam("b_kind"), table.c.resolved_at.is_(None), *conditions
                )
                .values(resolved_at=self.now, resolution=bindparam("b_how"))
            )
            self.conn.execute(statement, [{f"b_{k}": v for k, v in item.items()} for item in items])

    def _flush_deny(self) -> None:
        if not self.deny:
            return
        listed = set(
            self.conn.scalars(
                select(DenyCandidate.card_serial).where(
                    DenyCandidate.card_serial.in_(list(self.deny))
                )
            )
        )
        rows = [row for serial, row in self.deny.items() if serial not in listed]
        if rows:
            self.conn.execute(insert(DenyCandidate), rows)

    def _flush_gaps(self) -> None:
        rows = [
            {
                "scope": g.scope,
                "subject": g.subject,
                "number": g.number,
                "state": g.state,
                "opened_at": self.now,
                "closed_at": None if g.closed_by is None else self.now,
                "closed_by": g.closed_by,
            }
            for g in self.new_gaps
        ]
        self._bulk_insert(_GAPS, rows)
        states: list[_CardState | _TerminalState] = [*self.cards.values(), *self.terminals.values()]
        stored = [
            g
            for state in states
            if state.gaps
            for g in state.gaps.values()
            if g.id is not None and g.changed
        ]
        if stored:
            table = _GAPS
            self.conn.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(
                    state=bindparam("b_state"),
                    closed_at=bindparam("b_closed_at"),
                    closed_by=bindparam("b_closed_by"),
                ),
                [
                    {
                        "b_id": g.id,
                        "b_state": g.state,
                        "b_closed_at": None if g.closed_by is None else self.now,
                        "b_closed_by": g.closed_by,
                    }
                    for g in stored
                ],
            )

    def _flush_states(self) -> None:
        new_cards: list[dict[str, Any]] = []
        old_cards: list[dict[str, Any]] = []
        for card in self.cards.values():
            if not card.dirty:
                continue
            row = {
                "card_pseudonym": card.pseudonym,
                "last_counter": card_tx_counter_of(card.last_session),
                "purses": _SORTED_JSON.encode(
                    {
                        purse: [card_tx_counter_of(number), balance]
                        for purse, (number, balance) in card.purses.items()
                    }
                ).decode(),
                "open_gaps": card.open_gaps,
            }
            (old_cards if card.stored else new_cards).append(row)
        self._bulk_insert(_PURSE_STATES, new_cards)
        if old_cards:
            self._bulk_update(
                _PURSE_STATES, "card_pseudonym", ("last_counter", "purses", "open_gaps"), old_cards
            )
        new_terms = [
            {"terminal_id": t.terminal_id, "last_seq": t.last_seq, "open_gaps": t.open_gaps}
            for t in self.terminals.values()
            if t.dirty and not t.stored
        ]
        old_terms = [
            {"b_tid": t.terminal_id, "b_last": t.last_seq, "b_gaps": t.open_gaps}
            for t in self.terminals.values()
            if t.dirty and t.stored
        ]
        if new_terms:
            self.conn.execute(insert(TerminalState), new_terms)
        if old_terms:
            table = _TERMINAL_STATES
            self.conn.execute(
                update(table)
                .where(table.c.terminal_id == bindparam("b_tid"))
                .values(last_seq=bindparam("b_last"), open_gaps=bindparam("b_gaps")),
                old_terms,
            )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a chunk is processed.

    A chunk allocates tens of thousands of small dicts and lists at once, which start the
    collector over and over (about 15 % of the loop's time, measured); they hold no reference
    cycles and are freed by reference counting when the chunk's transaction returns, which is
    inside the pause, so the collection that follows does not walk them either. The collector
    is set back as it was (it is process-wide) even when the chunk fails.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sqlite_times(row: Any, indexes: list[int]) -> Any:
    """``row`` with its datetimes at ``indexes`` as SQLite text (text and ``None`` kept)."""
    converted = None
    for index in indexes:
        if isinstance(row[index], datetime):
            if converted is None:
                converted = list(row)
            converted[index] = _sqlite_time(row[index])
    return row if converted is None else converted


def _sqlite_time(value: datetime) -> str:
    """A time as SQLAlchemy stores a ``UTCDateTime`` on SQLite (naive UTC text).

    ``isoformat`` gives the same text as ``strftime("%Y-%m-%d %H:%M:%S.%f")`` for years from
    1000 on, at a fraction of the cost.
    """
    value = value.astimezone(UTC)
    if value.year < 1000:
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _net(lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Lines summed per account, zero lines dropped (a correction that changes nothing is empty)."""
    totals: dict[str, int] = {}
    for account, amount in lines:
        totals[account] = totals.get(account, 0) + amount
    return [(account, amount) for account, amount in totals.items() if amount]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _moved(balance_after: int) -> dict[str, Any]:
    """A purse mark as a movement (only its ``balance_after`` is read)."""
    return {"balance_after": balance_after}


def _marks(originals: dict[int, list[dict[str, Any]]]) -> dict[str, tuple[int, int]]:
    """Each purse's latest original session and the balance it left."""
    marks: dict[str, tuple[int, int]] = {}
    for number in sorted(originals):
        for movement in originals[number]:
            marks[movement["purse"]] = (number, movement["balance_after"])
    return marks


def _pop_inferred(view: _CardView, number: int) -> list[tuple[str, int]]:
    """The inferred amounts of recovered session ``number``, by purse, forgotten."""
    found = [(purse, amount) for (n, purse), amount in view.inferred.items() if n == number]
    for purse, _ in found:
        del view.inferred[(number, purse)]
    return [(purse, amount) for purse, amount in found if amount]


def _any_between(numbers: list[int], low: int, high: int) -> bool:
    """Whether a number of the sorted ``numbers`` lies strictly between ``low`` and ``high``."""
    return _first_between(numbers, low, high) is not None


def _first_between(numbers: list[int], low: int, high: int) -> int | None:
    """The smallest of the sorted ``numbers`` strictly between ``low`` and ``high``."""
    index = bisect.bisect_right(numbers, low)
    if index < len(numbers) and numbers[index] < high:
        return numbers[index]
    return None


def _break_key(counter: int | None, detail: str) -> tuple[int, int, str] | None:
    """The (older session, newer session, purse) of a stored ``chain_break`` (its detail)."""
    purse, _, rest = detail.partition(": ")
    _, found, tail = rest.partition("session at counter ")
    if counter is None or not found:
        return None
    try:
        other = session_number(int(tail.split(" ", 1)[0]))
    except ValueError:
        return None
    this = session_number(counter)
    return (other, this, purse) if rest.startswith("balance before") else (this, other, purse)
