"""The validation loop: drain stored upload batches into taps, anomalies and ledger entries.

:meth:`ValidationLoop.run_once` takes pending batches (``upload_batches.processed_at IS NULL``)
in arrival order, in chunks of about ``chunk_records`` records, and processes each chunk in ONE
database transaction: everything a chunk produces is bulk-inserted (SQLAlchemy Core
executemany), then its batches are marked processed. A crash loses nothing (the batches stay
pending) and never half-applies a chunk.

Per record (rules in ``docs/validation-loop.md``):

1. ``(terminal_id, terminal_seq)`` already stored: a no-op (different content: ``sequence_reuse``).
2. SAM traceable signature over the record's signing bytes (:mod:`card_schema.uploads.signing`),
   verified with the SAM's derived key (cached in memory). Bad: ``forged_signature``, nothing
   charged, card put on ``deny_candidates``.
3. ABORTED: stored, nothing charged.
4. COMMITTED: ``(card pseudonym, card counter)`` already charged: ``replay`` (not charged again),
   unless the charged tap was recovered from a card log, in which case this is its original:
   the recovered posting is corrected, not doubled.
5. Card session gaps opened (``card_counter_gap``) or filled; the card's ``last_events`` fill
   open gaps (``recovered_from_card_log``); purse chaining checked (``chain_break``).
   Calypso transaction counters count DOWN: everything that depends on the order of a card's
   sessions works on :func:`card_schema.uploads.counters.session_number` (ascending), while
   deduplication and every stored ``card_tx_counter`` (taps, anomalies, gaps, purse states)
   keep the raw counter the card reported.
6. Posted to the ledger (:func:`backend.ledger.accounts.session_posting`); ring-fence
   violations (``ring_fence_violation``) go to suspense.

Per batch: terminal sequence gaps, using the batch's ``uncertain`` list (``sequence_gap``).

Batches are stored only after :func:`card_schema.uploads.batch.verify_batch` accepted them, so
the loop reads them back with plain ``json.loads`` and trusts their shape.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, ClassVar, cast

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from backend.columns import UTCDateTime, utcnow
from backend.ledger.accounts import SUSPENSE_CARD_LOG, SessionContext, card_account, session_posting
from backend.ledger.models import LedgerEntry
from backend.uploads.models import UploadBatch
from backend.validation.models import (
    Anomaly,
    DenyCandidate,
    Gap,
    OperatorStation,
    ProductValue,
    PurseState,
    Tap,
    TapStatus,
    TerminalState,
)
from backend.validation.providers import CardPseudonymizer, TraceKeyProvider
from card_schema.errors import VerificationError
from card_schema.traceability import verify_traceable_signature
from card_schema.uploads.counters import card_tx_counter_of, session_number
from card_schema.uploads.signing import sam_signature_input, wire_record_signing_bytes

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
_TERMINAL_STATES = cast(Table, TerminalState.__table__)

MAX_GAP_NUMBERS = 1000  # one jump larger than this is one anomaly, not a thousand gap rows
_PG_LOCK_KEY = 0x5256414C  # "RVAL": one validation loop at a time per database


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


@dataclass
class _CardState:
    """A card as the chunk knows it; every number here is a SESSION number (ascending).

    Stored as raw card counters (``purse_states``: ``last_counter`` and the purse marks), and
    converted when loaded (``_Chunk._prefetch``) and written (``_Chunk._flush_states``).
    """

    pseudonym: str
    last_session: int
    purses: dict[str, list[int]]  # purse -> [session number, balance_after]
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


@dataclass
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
        self._trace_keys = trace_keys
        self._pseudonyms = pseudonyms
        self.chunk_records = chunk_records
        self._sam_keys: dict[bytes, bytes] = {}  # derived per-SAM keys: memory only
        self._pseudonym_cache: dict[tuple[str, int], str] = {}
        self._period_cache: dict[str, int] = {}  # "YYYY-MM-DD" -> rotation period
        bind = factory.kw.get("bind")
        url = str(getattr(bind, "url", id(factory)))
        with ValidationLoop._locks_guard:
            self._lock = ValidationLoop._locks.setdefault(url, threading.Lock())

    def sam_key(self, sam_serial: bytes) -> bytes:
        """The derived verification key of a SAM, asked once to the key provider then cached."""
        key = self._sam_keys.get(sam_serial)
        if key is None:
            key = self._sam_keys[sam_serial] = self._trace_keys.sam_trace_key(sam_serial)
        return key

    def pseudonym(self, card_serial_hex: str, occurred_at: datetime) -> str:
        """The card's pseudonym for ``occurred_at`` (cached per card and rotation period)."""
        day = occurred_at.date().isoformat()
        period = self._period_cache.get(day)
        if period is None:
            # Periods are whole days long (rotation in days from a midnight epoch), so a day
            # never straddles two periods.
            period = self._period_cache[day] = self._pseudonyms.pseudonym_period(occurred_at)
        key = (card_serial_hex, period)
        value = self._pseudonym_cache.get(key)
        if value is None:
            if len(self._pseudonym_cache) > 2_000_000:
                self._pseudonym_cache.clear()
            value = self._pseudonym_cache[key] = self._pseudonyms.pseudonym(
                bytes.fromhex(card_serial_hex), occurred_at
            )
        return value

    def pending(self) -> int:
        """Number of stored batches not processed yet."""
        with self._factory() as session:
            return len(
                session.scalars(
                    select(UploadBatch.id).where(UploadBatch.processed_at.is_(None))
                ).all()
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
                chunk = self._run_chunk()
                if chunk.batches == 0:
                    break
                report.add(chunk)
                done += 1
        return report

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
        with bind.connect() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.commit()  # ends the autobegun (empty) transaction: the chunk commits its own
            try:
                with self._factory(bind=conn) as session:
                    return self._chunk_transaction(session, "sqlite")
            finally:
                if conn.in_transaction():
                    conn.rollback()
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()

    def _chunk_transaction(self, session: Session, dialect: str) -> LoopReport:
        with session.begin():
            if dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            rows = session.execute(
                select(UploadBatch.id, UploadBatch.body, UploadBatch.record_count)
                .where(UploadBatch.processed_at.is_(None))
                .order_by(UploadBatch.id)
                .limit(max(1, self.chunk_records))
            ).all()
            chosen: list[tuple[int, bytes]] = []
            total = 0
            for row_id, body, count in rows:
                if chosen and total + count > self.chunk_records:
                    break
                chosen.append((row_id, bytes(body)))
                total += count
            if not chosen:
                return LoopReport()
            chunk = _Chunk(self, session, RevenueTables.load(session))
            report = chunk.process(chosen)
            session.execute(
                update(UploadBatch)
                .where(UploadBatch.id.in_([row_id for row_id, _ in chosen]))
                .values(processed_at=chunk.now)
            )
            return report


class _Chunk:
    """The work of one transaction: decoded batches in, bulk rows out."""

    def __init__(self, loop: ValidationLoop, session: Session, revenue: RevenueTables) -> None:
        self.loop = loop
        self.session = session
        self.conn: Connection = session.connection()
        self.revenue = revenue
        self.now = utcnow()
        self.report = LoopReport()
        self.taps: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.anomalies: list[dict[str, Any]] = []
        self.resolutions: list[dict[str, Any]] = []  # anomalies stored earlier, now explained
        self.deny: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, _CardState] = {}
        self.terminals: dict[str, _TerminalState] = {}
        self.charged: dict[tuple[str, int], _Charged] = {}
        self.new_gaps: list[_GapRow] = []
        self.ledger_lines_by_ref: dict[str, list[tuple[str, int]]] = {}
        self.seen: dict[tuple[str, int], str] = {}  # (terminal, seq) -> digest, this chunk

    # -- driver ---------------------------------------------------------------------------

    def process(self, batches: list[tuple[int, bytes]]) -> LoopReport:
        decoded = []
        for row_id, body in batches:
            batch = json.loads(body)["batch"]
            for record in batch["records"]:
                occurred = datetime.fromisoformat(record["occurred_at"])
                record["_at"] = occurred
                record["_card"] = self.loop.pseudonym(record["card_serial"], occurred)
            decoded.append((row_id, batch))
        self._prefetch(decoded)
        for row_id, batch in decoded:
            self._process_batch(row_id, batch)
        self._flush()
        self.report.batches = len(batches)
        return self.report

    def _prefetch(self, decoded: list[tuple[int, dict[str, Any]]]) -> None:
        pseudonyms = {r["_card"] for _, b in decoded for r in b["records"]}
        terminals = {b["terminal_id"] for _, b in decoded}
        for key_chunk in _chunks(sorted(pseudonyms), 5000):
            for card, last, purses, open_gaps in self.conn.execute(
                select(
                    PurseState.card_pseudonym,
                    PurseState.last_counter,
                    PurseState.purses,
                    PurseState.open_gaps,
                ).where(PurseState.card_pseudonym.in_(key_chunk))
            ):
                self.cards[card] = _CardState(
                    card,
                    session_number(last),
                    {
                        purse: [session_number(counter), balance]
                        for purse, (counter, balance) in json.loads(purses).items()
                    },
                    open_gaps,
                    True,
                )
        for terminal_id, last_seq, gaps in self.conn.execute(
            select(
                TerminalState.terminal_id, TerminalState.last_seq, TerminalState.open_gaps
            ).where(TerminalState.terminal_id.in_(sorted(terminals)))
        ):
            self.terminals[terminal_id] = _TerminalState(terminal_id, last_seq, gaps, True)

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
            signed = wire_record_signing_bytes(record)
            digest = hashlib.sha256(signed).hexdigest()[:32]
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
            self._process_record(row_id, record, signed, digest)
        self._terminal_gaps(batch, received)

    # -- one record -----------------------------------------------------------------------

    def _process_record(
        self, row_id: int, record: dict[str, Any], signed: bytes, digest: str
    ) -> None:
        card = record["_card"]
        tap = self._tap_row(row_id, record, digest)
        sam_hex = record["sam_signature"]
        if sam_hex is not None:
            raw = bytes.fromhex(sam_hex)
            try:
                parsed = verify_traceable_signature(
                    self.loop.sam_key(raw[:4]), raw, sam_signature_input(signed)
                )
            except VerificationError as exc:
                tap["status"] = TapStatus.FORGED
                self._anomaly("forged_signature", record, str(exc))
                self._deny(record, "forged_signature")
                self.taps.append(tap)
                return
            tap["sam_verified"] = True
            tap["sam_serial"] = parsed.sam_serial.hex().upper()
            tap["sam_counter"] = parsed.sam_counter
        if record["outcome"] != "COMMITTED":
            tap["status"] = TapStatus.ABORTED
            self.taps.append(tap)
            return
        counter = record["card_tx_counter"]  # dedup key: raw, as the card said
        number = session_number(counter)  # order: Calypso counters count down
        state = self.cards.get(card)
        existing = self.charged.get((card, counter))
        if existing is None and state is not None and number <= state.last_session:
            existing = self._stored_charge(card, counter)
        entry_ref = f"tap:{record['terminal_id']}:{record['terminal_seq']}"
        if existing is not None:
            self._second_arrival(record, tap, existing, entry_ref)
            return
        if state is None:
            state = self.cards[card] = _CardState(card, number, {}, 0, False, True)
        elif number > state.last_session:
            if number > state.last_session + 1:
                self._open_card_gaps(state, record, state.last_session + 1, number - 1)
            if state.open_gaps:
                self._recover_from_log(state, record)
            self._check_chain_forward(state, record)
        else:
            self._fill_card_gap(state, record)
        movements = record["movements"]
        for movement in movements:
            mark = state.purses.get(movement["purse"])
            if mark is None or mark[0] < number:
                state.purses[movement["purse"]] = [number, movement["balance_after"]]
        if number > state.last_session:
            state.last_session = number
        state.dirty = True
        tap["charged"] = True
        tap["status"] = TapStatus.POSTED
        self.taps.append(tap)
        self.charged[(card, counter)] = _Charged(TapStatus.POSTED, entry_ref, movements)
        self.report.posted += 1
        self._post(entry_ref, self._posting_lines(record, tap), record["_at"], "tap")

    def _tap_row(self, row_id: int, record: dict[str, Any], digest: str) -> dict[str, Any]:
        station = record["station_id"]
        return {
            "terminal_id": record["terminal_id"],
            "terminal_seq": record["terminal_seq"],
            "batch_row": row_id,
            "card_pseudonym": record["_card"],
            "card_tx_counter": record["card_tx_counter"],
            "charged": False,
            "status": "",
            "kind": record["kind"],
            "application": record["application"],
            "outcome": record["outcome"],
            "resolution": record["resolution"],
            "occurred_at": record["_at"],
            "product_code": record["product_code"],
            "station_id": station,
            "school_uai": record["school_uai"],
            "operator_id": None if station is None else self.revenue.operators.get(station),
            "movements": json.dumps(movements, sort_keys=True, separators=(",", ":"))
            if (movements := record["movements"])
            else "[]",
            "sam_verified": False,
            "sam_serial": None,
            "sam_counter": None,
            "written_event": record["written_event"],
            "record_digest": digest,
        }

    def _posting_lines(self, record: dict[str, Any], tap: dict[str, Any]) -> list[tuple[str, int]]:
        movements = record["movements"]
        if not movements:
            return []
        product = record["product_code"]
        ctx = SessionContext(
            kind=record["kind"],
            card=record["_card"],
            terminal_id=record["terminal_id"],
            operator_id=tap["operator_id"],
            school_uai=record["school_uai"],
            trip_value=0 if product is None else self.revenue.trip_values.get(product, 0),
        )
        posting = session_posting(ctx, movements)
        if posting.violation is not None:
            kind = "ring_fence_violation" if "ring-fenced" in posting.violation else None
            self._anomaly(kind or "unexplained_movement", record, posting.violation)
        return posting.lines

    def _post(
        self,
        entry_ref: str,
        lines: list[tuple[str, int]],
        occurred_at: datetime,
        kind: str,
        reverses: str | None = None,
    ) -> None:
        if not lines:
            return
        self.ledger_lines_by_ref[entry_ref] = lines
        for index, (account, amount) in enumerate(lines):
            self.ledger.append(
                {
                    "entry_ref": entry_ref,
                    "line": index,
                    "account": account,
                    "amount": amount,
                    "occurred_at": occurred_at,
                    "kind": kind,
                    "reverses": reverses,
                    "posted_at": self.now,
                }
            )

    # -- second arrivals of a card session -------------------------------------------------

    def _stored_charge(self, card: str, counter: int) -> _Charged | None:
        row = self.conn.execute(
            select(Tap.status, Tap.terminal_id, Tap.terminal_seq, Tap.movements).where(
                Tap.card_pseudonym == card, Tap.card_tx_counter == counter, Tap.charged.is_(True)
            )
        ).first()
        if row is None:
            return None
        status, terminal_id, seq, movements = row
        ref = f"rec:{card}:{counter}" if terminal_id is None else f"tap:{terminal_id}:{seq}"
        charged = _Charged(status, ref, json.loads(movements))
        self.charged[(card, counter)] = charged
        return charged

    def _second_arrival(
        self, record: dict[str, Any], tap: dict[str, Any], existing: _Charged, entry_ref: str
    ) -> None:
        card, counter = record["_card"], record["card_tx_counter"]
        if existing.status != TapStatus.RECOVERED:
            tap["status"] = TapStatus.REPLAY
            self.taps.append(tap)
            self._anomaly(
                "replay",
                record,
                f"card counter {counter} already charged by {existing.entry_ref}",
            )
            return
        # The original of a session rebuilt from a card log: correct the recovered posting
        # (suspense -> real counterparty) instead of charging the card a second time.
        tap["status"] = TapStatus.CONFIRMS_RECOVERED
        self.taps.append(tap)
        existing.status = TapStatus.CONFIRMS_RECOVERED
        recovered_lines = self.ledger_lines_by_ref.get(existing.entry_ref)
        if recovered_lines is None:
            recovered_lines = [
                (account, amount)
                for account, amount in self.conn.execute(
                    select(LedgerEntry.account, LedgerEntry.amount)
                    .where(LedgerEntry.entry_ref == existing.entry_ref)
                    .order_by(LedgerEntry.line)
                )
            ]
        lines = [(a, -amount) for a, amount in recovered_lines] + self._posting_lines(record, tap)
        self._post(entry_ref, _net(lines), record["_at"], "correction", existing.entry_ref)
        self._resolve(
            "recovered_from_card_log",
            {"card_pseudonym": card, "card_tx_counter": counter},
            f"original arrived: {entry_ref}",
        )

    # -- card counter gaps, recovery, chaining ---------------------------------------------

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
        self, state: _CardState, record: dict[str, Any], first: int, last: int
    ) -> None:
        """Sessions ``first`` to ``last`` (session numbers) of the card were not received."""
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

    def _recover_from_log(self, state: _CardState, record: dict[str, Any]) -> None:
        """Rebuild missing sessions from the card's event log read at this tap.

        ``last_events`` is newest first; the rule (docs/validation-loop.md) is that every
        committed session writes one event, so ``last_events[i]`` is the event of session number
        ``session_number(card_tx_counter) - 1 - i`` (card counter ``card_tx_counter + 1 + i``:
        Calypso counters count down).
        """
        gaps = self._card_gaps(state)
        current = session_number(record["card_tx_counter"])
        for index, event in enumerate(record["last_events"]):
            number = current - 1 - index
            gap = gaps.get(number)
            if gap is None or gap.closed_by is not None:
                continue
            counter = card_tx_counter_of(number)
            movements = self._inferred_movements(state, record, number)
            self._close_gap(gap, "card_log")
            state.open_gaps -= 1
            self._resolve_card_gap(state.pseudonym, number, "recovered from a card log")
            ref = f"rec:{state.pseudonym}:{counter}"
            lines: list[tuple[str, int]] = []
            for movement in movements:
                if movement["unit"] == "eurocent" and movement["amount"]:
                    lines.append(
                        (card_account(state.pseudonym, movement["purse"]), movement["amount"])
                    )
                    lines.append((SUSPENSE_CARD_LOG, -movement["amount"]))
                state.purses[movement["purse"]] = [number, movement["balance_after"]]
            self.taps.append(
                {
                    "terminal_id": None,
                    "terminal_seq": None,
                    "batch_row": None,
                    "card_pseudonym": state.pseudonym,
                    "card_tx_counter": counter,
                    "charged": True,
                    "status": TapStatus.RECOVERED,
                    "kind": "card_log",
                    "application": record["application"],
                    "outcome": "COMMITTED",
                    "resolution": "recovered_from_card",
                    "occurred_at": record["_at"],
                    "product_code": None,
                    "station_id": None,
                    "school_uai": None,
                    "operator_id": None,
                    "movements": json.dumps(movements, sort_keys=True, separators=(",", ":")),
                    "sam_verified": False,
                    "sam_serial": None,
                    "sam_counter": None,
                    "written_event": event,
                    "record_digest": None,
                }
            )
            self.charged[(state.pseudonym, counter)] = _Charged(TapStatus.RECOVERED, ref, movements)
            self._post(ref, lines, record["_at"], "recovered")
            self._anomaly(
                "recovered_from_card_log",
                record,
                f"card counter {counter} rebuilt from the card log read at "
                f"{record['terminal_id']}:{record['terminal_seq']}",
                card_tx_counter=counter,
            )

    def _inferred_movements(
        self, state: _CardState, record: dict[str, Any], number: int
    ) -> list[dict[str, Any]]:
        """Movements of the missing session ``number``, from the purse chain around it.

        Only when ``number`` is the one card session missing between a purse's previous
        session and this record is the difference attributable to it.
        """
        gaps = self._card_gaps(state)
        current = session_number(record["card_tx_counter"])
        inferred = []
        for movement in record["movements"]:
            mark = state.purses.get(movement["purse"])
            if mark is None or not mark[0] < number:
                continue
            others = [
                n
                for n, g in gaps.items()
                if mark[0] < n < current and n != number and g.closed_by is None
            ]
            delta = movement["balance_before"] - mark[1]
            if others or delta == 0:
                continue
            inferred.append(
                {
                    "purse": movement["purse"],
                    "unit": movement["unit"],
                    "amount": delta,
                    "balance_before": mark[1],
                    "balance_after": movement["balance_before"],
                }
            )
        return inferred

    def _check_chain_forward(self, state: _CardState, record: dict[str, Any]) -> None:
        """A record newer than every session the card is known for: chain from the last one."""
        current = session_number(record["card_tx_counter"])
        for movement in record["movements"]:
            mark = state.purses.get(movement["purse"])
            if mark is None or mark[1] == movement["balance_before"]:
                continue
            if state.open_gaps and any(
                mark[0] < n < current and g.closed_by is None
                for n, g in self._card_gaps(state).items()
            ):
                continue  # a missing session explains it; checked again when it arrives
            self._anomaly(
                "chain_break",
                record,
                f"{movement['purse']}: balance before {movement['balance_before']} but the "
                f"session at counter {card_tx_counter_of(mark[0])} left {mark[1]}",
            )

    def _fill_card_gap(self, state: _CardState, record: dict[str, Any]) -> None:
        """A record older than the card's last session: fill its gap, check both neighbours."""
        current = session_number(record["card_tx_counter"])
        gap = self._card_gaps(state).get(current)
        if gap is not None and gap.closed_by is None:
            self._close_gap(gap, "record")
            state.open_gaps -= 1
            self._resolve_card_gap(
                state.pseudonym,
                current,
                f"received from {record['terminal_id']}:{record['terminal_seq']}",
            )
        history, known = self._history(state.pseudonym)
        known.add(current)
        for movement in record["movements"]:
            purse = movement["purse"]
            before = [(n, m) for n, m in history.get(purse, []) if n < current]
            after = [(n, m) for n, m in history.get(purse, []) if n > current]
            if before:
                n, m = max(before, key=lambda item: item[0])
                if m["balance_after"] != movement["balance_before"] and not self._unknown_between(
                    state, record, known, n, current
                ):
                    self._anomaly(
                        "chain_break",
                        record,
                        f"{purse}: balance before {movement['balance_before']} but the session "
                        f"at counter {card_tx_counter_of(n)} left {m['balance_after']}",
                    )
            if after:
                n, m = min(after, key=lambda item: item[0])
                if m["balance_before"] != movement["balance_after"] and not self._unknown_between(
                    state, record, known, current, n
                ):
                    self._anomaly(
                        "chain_break",
                        record,
                        f"{purse}: balance after {movement['balance_after']} but the session "
                        f"at counter {card_tx_counter_of(n)} started from {m['balance_before']}",
                    )

    def _unknown_between(
        self, state: _CardState, record: dict[str, Any], known: set[int], low: int, high: int
    ) -> bool:
        """Whether some card session strictly between sessions ``low`` and ``high`` is unknown.

        Such numbers become gaps (the card's first sessions may arrive after later ones), so
        the chain between ``low`` and ``high`` is checked again once they are filled.
        """
        unknown = [n for n in range(low + 1, high) if n not in known]
        gaps = self._card_gaps(state)
        for number in unknown[:MAX_GAP_NUMBERS]:
            if number not in gaps:
                self._open_card_gaps(state, record, number, number)
        return bool(unknown)

    def _history(self, card: str) -> tuple[dict[str, list[tuple[int, dict[str, Any]]]], set[int]]:
        """Every charged movement of a card by purse, and its charged sessions (session numbers)."""
        sessions: dict[int, list[dict[str, Any]]] = {
            session_number(counter): json.loads(movements)
            for counter, movements in self.conn.execute(
                select(Tap.card_tx_counter, Tap.movements).where(
                    Tap.card_pseudonym == card, Tap.charged.is_(True)
                )
            )
        }
        for (pseudonym, counter), charged in self.charged.items():
            if pseudonym == card:
                sessions[session_number(counter)] = charged.movements
        by_purse: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for number, movements in sessions.items():
            for movement in movements:
                by_purse.setdefault(movement["purse"], []).append((number, movement))
        return by_purse, set(sessions)

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

    def _bulk_insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (same keys) the fastest way the driver offers.

        Profiling showed SQLAlchemy's per-row parameter processing costing more than the
        database work, so the rows go straight to the driver: ``executemany`` on SQLite (times
        in the format SQLAlchemy reads back), ``COPY FROM STDIN`` on PostgreSQL. Any other
        database gets a Core ``insert`` executemany.
        """
        if not rows:
            return
        columns = list(rows[0])
        names = ", ".join(columns)
        dialect = self.conn.dialect.name
        driver = self.conn.connection.driver_connection
        if dialect == "sqlite" and driver is not None:
            getter = itemgetter(*columns)
            values: list[Any] = [getter(row) for row in rows]
            if len(columns) == 1:
                values = [(value,) for value in values]
            times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
            if times:
                texts: dict[datetime, str] = {}  # a chunk repeats few distinct timestamps
                converted = []
                for row_values in values:
                    row_list = list(row_values)
                    for index in times:
                        value = row_list[index]
                        if value is not None:
                            text_value = texts.get(value)
                            if text_value is None:
                                text_value = texts[value] = _sqlite_time(value)
                            row_list[index] = text_value
                    converted.append(row_list)
                values = converted
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
                for row in rows:
                    copy.write_row(tuple(row[c] for c in columns))
        else:
            self.conn.execute(insert(table), rows)

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
        self._bulk_insert(_TAPS, self.taps)
        self._bulk_insert(_LEDGER, self.ledger)
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
                "purses": json.dumps(
                    {
                        purse: [card_tx_counter_of(number), balance]
                        for purse, (number, balance) in card.purses.items()
                    },
                    sort_keys=True,
                    separators=(",", ":"),
                ),
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
