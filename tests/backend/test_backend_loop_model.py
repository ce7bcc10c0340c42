"""The validation loop against a reference model of its documented rules, on random histories.

Hypothesis draws card histories (one or two cards, two to seven sessions each, at gates A and B
that read the card log, gate C that does not, desk D that reloads), injects faults (records
withheld, forged, replayed from another gate, skipped terminal sequences, purse jumps, aid spent
at a gate against its ring-fence, a reused terminal sequence, batches sent twice, batches
delivered late in any order) or none, cuts each terminal's records into batches, and delivers
them through ``receive_batch`` to a real database, running ``ValidationLoop.run_once`` at random
points with a random chunk size, records prepared at upload or by the loop. The final state
(charged sessions, ledger balance per account, open anomalies) must be what
``tests/backend/loop_model.py`` predicts from the same deliveries, and:

- no fault injected (any order, any chunking): no open anomaly, and each card's purse mirror in
  the ledger moved exactly as the card did;
- delivered in another order that keeps the documented time-dependent cases out (each
  terminal's first batch first, each card's first session first, no reused sequence): the state
  of the natural order.

Sizes: ``make test`` runs 300 derandomized examples on SQLite and 40 on PostgreSQL; ``--slow``
runs 3,000 and 300.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from backend.db import make_engine, make_sessionmaker
from backend.migrate import upgrade
from backend.uploads.service import receive_batch
from backend.validation.loop import ValidationLoop
from backend.validation.prepare import RecordPreparer
from backend.validation.providers import InMemoryPseudonymizer, InMemoryTraceKeys
from card_schema.uploads.batch import AckStatus
from card_schema.uploads.counters import session_number
from card_schema.uploads.records import JournalRecord, TransactionKind
from tests.backend.loop_model import Delivery, Move, Rec, State, expected_state
from tests.backend.validation_fixtures import (
    PSEUDONYM_KEY,
    TRACE_MASTER,
    KeyRing,
    TerminalSim,
    ctr,
    fresh_postgres_database,
    movement,
    pseudonym_of,
    seed_revenue_tables,
)

FAULTS = ("withheld", "forged", "replay", "skip_seq", "jump", "ring_fence")
WALLET_START, AID_START = 2000, 3000
FIRST_SESSION = 10


@dataclass(frozen=True)
class Plan:
    """What Hypothesis drew; :func:`build` makes the signed batches from it."""

    cards: tuple[
        tuple[tuple[str, str, int, frozenset[str]], ...], ...
    ]  # (where, kind, amount, faults)
    batch_sizes: tuple[int, ...]
    reuse: int | None  # index of a record whose terminal sequence is reused, or None
    duplicates: tuple[int, ...]  # batches sent twice
    order: str  # natural, anchored or any
    shuffle_seed: int
    chunk: int
    run_after: frozenset[int]
    prepare_at_upload: bool

    @property
    def faulty(self) -> bool:
        """Whether any fault was injected."""
        return (
            any(faults for card in self.cards for *_, faults in card)
            or self.reuse is not None
            or bool(self.duplicates)
        )


_SESSION = st.tuples(
    st.sampled_from("AABBCD"),
    st.sampled_from(["validation", "sv_debit", "sv_debit"]),
    st.sampled_from([150, 170, 200]),
    st.sampled_from([frozenset()] * 8 + [frozenset({f}) for f in FAULTS]),
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    faulty = draw(st.booleans())
    session = _SESSION if faulty else _SESSION.map(lambda s: (*s[:3], frozenset()))
    cards = draw(
        st.lists(st.lists(session, min_size=2, max_size=7).map(tuple), min_size=1, max_size=2)
    )
    return Plan(
        cards=tuple(cards),
        batch_sizes=tuple(draw(st.lists(st.integers(1, 3), min_size=24, max_size=24))),
        reuse=draw(st.none() | st.integers(0, 100)) if faulty else None,
        duplicates=tuple(draw(st.lists(st.integers(0, 100), max_size=2))) if faulty else (),
        order=draw(st.sampled_from(["natural", "anchored", "any"])),
        shuffle_seed=draw(st.integers(0, 2**16)),
        chunk=draw(st.integers(1, 12)),
        run_after=frozenset(draw(st.sets(st.integers(0, 30), max_size=4))),
        prepare_at_upload=draw(st.booleans()),
    )


@dataclass
class Built:
    """The deliveries of a plan, as bytes for the upload service and as model records."""

    terminals: dict[str, TerminalSim]
    batches: list[tuple[str, str, bytes, tuple[Rec, ...]]]  # terminal, batch id, body, records
    natural: list[int]  # indexes into batches, in the order they were made
    first_batches: set[int]  # each terminal's first batch
    card_firsts: dict[str, int]  # card -> its lowest delivered, verified session
    mirrors: dict[str, tuple[int, int]]  # card -> (wallet at the start, wallet at the end)


def _rec(record: JournalRecord, forged: bool, station: int | None) -> Rec:
    intent = record.intent
    return Rec(
        terminal=record.terminal_id,
        seq=record.seq,
        card=pseudonym_of(intent.card_serial),
        counter=intent.card_tx_counter,
        session=session_number(intent.card_tx_counter),
        kind=intent.kind.value,
        moves=tuple(Move(m.purse, m.amount, m.balance_before) for m in intent.movements),
        log=tuple(intent.last_events),
        station=station,
        forged=forged,
    )


def build(plan: Plan) -> Built:
    """Sign the records and batches of ``plan`` (deterministic)."""
    terminals = {
        "A": TerminalSim("GATE-A", sam_serial=bytes.fromhex("5A000001"), station_id=1042),
        "B": TerminalSim("GATE-B", sam_serial=bytes.fromhex("5A000002"), station_id=2001),
        "C": TerminalSim("GATE-C", sam_serial=bytes.fromhex("5A000003"), station_id=1042),
        "D": TerminalSim("DESK-D", sam_serial=bytes.fromhex("5A000004"), station_id=None),
        "E": TerminalSim("GATE-E", sam_serial=bytes.fromhex("5A000005"), station_id=2001),
    }
    made: dict[str, list[tuple[JournalRecord, Rec, bool]]] = {k: [] for k in terminals}
    when: dict[tuple[str, int], int] = {}  # (terminal, seq) -> order in which it was made
    firsts: dict[str, int] = {}
    mirrors: dict[str, tuple[int, int]] = {}
    for index, sessions in enumerate(plan.cards):
        serial = bytes.fromhex(f"00000000000000{index + 1:02X}")
        card = pseudonym_of(serial)
        wallet, aid = WALLET_START, AID_START
        events: list[bytes] = []
        for offset, (where, kind, amount, faults) in enumerate(sessions):
            number = FIRST_SESSION + offset
            terminal = terminals[where]
            if "skip_seq" in faults:
                terminal.seq += 1  # a sequence number never used
            if "jump" in faults:
                wallet += 300  # the purse moved outside any session the backend sees
                kind = "sv_debit" if where != "D" else kind
            if where == "D":
                kind, moves = "sv_reload", [movement("wallet.sv", 500, wallet)]
                wallet += 500
            elif "ring_fence" in faults:
                kind, moves = "sv_debit", [movement("cursus.books_aid", -amount, aid)]
                aid -= amount
            elif kind == "sv_debit":
                moves = [movement("wallet.sv", -amount, wallet)]
                wallet -= amount
            else:
                moves = []
            record = terminal.record(
                serial,
                ctr(number),
                kind=TransactionKind(kind),
                application="wallet" if moves else "plum",
                movements=moves,
                product_code=None if moves else 21,
                last_events=events[:3] if where in "AB" else (),
                forge="forged" in faults,
            )
            assert record.intent.written_event is not None
            events.insert(0, record.intent.written_event)
            forged = "forged" in faults
            delivered = "withheld" not in faults
            made[where].append((record, _rec(record, forged, terminal.station_id), delivered))
            when[(record.terminal_id, record.seq)] = len(when)
            if delivered and not forged:
                firsts[card] = min(firsts.get(card, number), number)
            if "replay" in faults and where in "ABC":
                copier = terminals["E" if where == "B" else "C"]
                copy = copier.record(
                    serial,
                    ctr(number),
                    kind=TransactionKind(kind),
                    application="wallet" if moves else "plum",
                    movements=moves,
                    product_code=None if moves else 21,
                )
                made[copier.terminal_id[-1]].append(
                    (copy, _rec(copy, False, copier.station_id), True)
                )
                when[(copy.terminal_id, copy.seq)] = len(when)
        mirrors[card] = (WALLET_START, wallet)
    if plan.reuse is not None:
        everything = [(k, r) for k, items in made.items() for r, _, _ in items]
        where, victim = everything[plan.reuse % len(everything)]
        terminal = terminals[where]
        dummy = bytes.fromhex("00000000000000EE")
        other = terminal.record(dummy, ctr(50), seq=victim.seq)
        fresh = terminal.record(dummy, ctr(51))
        made[where].append((other, _rec(other, False, terminal.station_id), True))
        made[where].append((fresh, _rec(fresh, False, terminal.station_id), True))
        firsts.setdefault(pseudonym_of(dummy), session_number(ctr(51)))
    batches: list[tuple[str, str, bytes, tuple[Rec, ...]]] = []
    first_batches: set[int] = set()
    sizes = itertools.cycle(plan.batch_sizes)
    for where, items in made.items():
        sent = [(record, rec) for record, rec, delivered in items if delivered]
        # The reused sequence travels with the fresh record after it (a batch of its own).
        cut = (
            len(sent) - 2
            if plan.reuse is not None and sent and sent[-1][1].counter == ctr(51)
            else len(sent)
        )
        groups: list[list[tuple[JournalRecord, Rec]]] = []
        position = 0
        while position < cut:
            size = next(sizes)
            groups.append(sent[position : min(cut, position + size)])
            position += size
        if cut < len(sent):
            groups.append(sent[cut:])
        terminal = terminals[where]
        for number, group in enumerate(groups):
            body = terminal.batch([record for record, _ in group])
            recs = tuple(sorted((rec for _, rec in group), key=lambda r: r.seq))
            ident = f"{terminal.terminal_id}:{recs[0].seq}-{recs[-1].seq}"
            if number == 0:
                first_batches.add(len(batches))
            batches.append((terminal.terminal_id, ident, body, recs))
    # Chronological: a batch leaves after its last record.
    natural = sorted(
        range(len(batches)),
        key=lambda i: max(when.get((r.terminal, r.seq), -1) for r in batches[i][3]),
    )
    for extra in plan.duplicates:
        if batches:
            natural.append(extra % len(batches))
    return Built(terminals, batches, natural, first_batches, firsts, mirrors)


def delivery_order(plan: Plan, built: Built) -> list[int]:
    """The order the batches reach the backend."""
    import random

    rng = random.Random(plan.shuffle_seed)
    order = list(built.natural)
    if plan.order == "natural":
        return order
    if plan.order == "any":
        rng.shuffle(order)
        return order
    anchors = [i for i in order if _is_anchor(built, i)]
    rest = [i for i in order if not _is_anchor(built, i)]
    rng.shuffle(rest)
    return sorted(set(anchors), key=order.index) + rest


def _anchors_first(built: Built) -> list[int]:
    """The natural order with the anchor batches moved to the front (the reference order)."""
    order = list(dict.fromkeys(built.natural))
    return [i for i in order if _is_anchor(built, i)] + [
        i for i in built.natural if not _is_anchor(built, i)
    ]


def _is_anchor(built: Built, index: int) -> bool:
    if index in built.first_batches:
        return True
    records = built.batches[index][3]
    return any(not r.forged and built.card_firsts.get(r.card) == r.session for r in records)


def _anchored(built: Built, order: list[int]) -> bool:
    """Whether ``order`` delivers each terminal's and each card's first batch first."""
    seen_terminals: set[str] = set()
    seen_cards: set[str] = set()
    for index in order:
        terminal, _, _, records = built.batches[index]
        if terminal not in seen_terminals and index not in built.first_batches:
            return False
        seen_terminals.add(terminal)
        for rec in records:
            if rec.forged or rec.card in seen_cards:
                continue
            if not any(
                r.card == rec.card and r.session == built.card_firsts[rec.card]
                for r in records
                if not r.forged
            ):
                return False
            seen_cards.add(rec.card)
    return True


def _deliveries(built: Built, order: list[int]) -> list[Delivery]:
    return [Delivery(built.batches[i][0], built.batches[i][1], built.batches[i][3]) for i in order]


def loop_state(url: str) -> State:
    """What the loop left in the database, in the model's terms."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            charged = {
                (card, counter): None if terminal is None else (terminal, seq)
                for card, counter, terminal, seq in conn.execute(
                    text(
                        "SELECT card_pseudonym, card_tx_counter, terminal_id, terminal_seq "
                        "FROM taps WHERE charged"
                    )
                )
            }
            ledger = {
                account: int(total)
                for account, total in conn.execute(
                    text("SELECT account, sum(amount) FROM ledger_entries GROUP BY account")
                )
                if total
            }
            anomalies: Counter[tuple[Any, ...]] = Counter()
            for kind, card, counter, terminal, seq in conn.execute(
                text(
                    "SELECT kind, card_pseudonym, card_tx_counter, terminal_id, terminal_seq "
                    "FROM anomalies WHERE resolved_at IS NULL"
                )
            ):
                if kind in ("sequence_gap", "sequence_reuse"):
                    anomalies[(kind, terminal, seq)] += 1
                elif kind == "chain_break":
                    anomalies[(kind, card, None)] += 1
                else:
                    anomalies[(kind, card, counter)] += 1
            total = conn.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger_entries"))
            assert total.scalar() == 0, "the ledger does not balance"
    finally:
        engine.dispose()
    return State(charged, ledger, anomalies)


def run_loop(url: str, plan: Plan, built: Built, order: list[int]) -> State:
    """Deliver the batches in ``order`` through the upload service; run the loop as planned."""
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        keys = KeyRing(*built.terminals.values())
        loop = ValidationLoop(
            factory,
            InMemoryTraceKeys(TRACE_MASTER),
            InMemoryPseudonymizer(PSEUDONYM_KEY),
            chunk_records=plan.chunk,
        )
        preparer = RecordPreparer(
            InMemoryTraceKeys(TRACE_MASTER), InMemoryPseudonymizer(PSEUDONYM_KEY)
        )
        for position, index in enumerate(order):
            terminal, _, body, _ = built.batches[index]
            outcome = receive_batch(
                factory,
                terminal,
                body,
                keys,
                max_bytes=1 << 20,
                max_records=5000,
                prepare=preparer.prepare_body if plan.prepare_at_upload else None,
            )
            assert outcome.ack.status in (AckStatus.ACCEPTED, AckStatus.DUPLICATE), outcome.ack
            if position in plan.run_after:
                loop.run_once()
        loop.run_once()
    finally:
        engine.dispose()
    return loop_state(url)


@pytest.fixture(scope="module")
def sqlite_template() -> Iterator[Path]:
    folder = Path(
        tempfile.mkdtemp(
            prefix="loop-model-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        )
    )
    path = folder / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    seed_revenue_tables(make_sessionmaker(engine))
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    yield path
    for thread in threading.enumerate():  # the loops' WAL checkpoint threads stop when idle
        if thread.name == "sqlite-checkpoint":
            thread.join(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


def _examples(request: pytest.FixtureRequest, normal: int, slow: int) -> int:
    return slow if request.config.getoption("--slow") else normal


def _check(plan: Plan, url: str, event: Any) -> None:
    built = build(plan)
    order = delivery_order(plan, built)
    state = run_loop(url, plan, built, order)
    expected = expected_state(_deliveries(built, order), ctr_of_session)
    event("faults injected" if plan.faulty else "no fault")
    for kind in sorted({key[0] for key in expected.open_anomalies}):
        event(f"open {kind}")
    if any(value is None for value in expected.charged.values()):
        event("a session still recovered from a card log")
    assert state.open_anomalies == expected.open_anomalies
    assert state.ledger == expected.ledger
    assert state.charged == expected.charged
    if not plan.faulty:
        assert not state.open_anomalies, "a clean history left open anomalies"
        for card, (start, end) in built.mirrors.items():
            assert state.ledger.get(f"card:{card}:wallet.sv", 0) == end - start
    reference = _anchors_first(built)
    if plan.reuse is None and _anchored(built, order) and _anchored(built, reference):
        event(f"order invariance checked ({plan.order} order)")
        natural = expected_state(_deliveries(built, reference), ctr_of_session)
        assert state.open_anomalies == natural.open_anomalies
        assert state.ledger == natural.ledger
        assert set(state.charged) == set(natural.charged)


def ctr_of_session(number: int) -> int:
    """The card counter of session ``number``."""
    return ctr(number)


def _report(name: str, stats: Counter[str], examples: int) -> None:
    """Print what the examples covered (``pytest -s``) and check they all ran."""
    print(f"\n{name}: {stats['examples']} examples")
    for what, n in sorted(stats.items()):
        print(f"  {n:5d}  {what}")
    assert stats["examples"] >= examples


def test_the_loop_agrees_with_the_model_on_sqlite(
    request: pytest.FixtureRequest, sqlite_template: Path
) -> None:
    examples = _examples(request, 300, 3000)
    stats: Counter[str] = Counter()
    made: list[tuple[float, Path]] = []

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(plans())
    def check(plan: Plan) -> None:
        stats["examples"] += 1
        # Files of earlier examples go once their loop's checkpoint thread (2 s idle) is done.
        while made and made[0][0] < time.monotonic() - 5:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{made[0][1]}{suffix}").unlink(missing_ok=True)
            made.pop(0)
        path = sqlite_template.with_name(f"example{stats['examples']}.db")
        shutil.copy(sqlite_template, path)
        made.append((time.monotonic(), path))
        _check(plan, f"sqlite:///{path}", lambda what: stats.update([what]))

    check()
    _report("SQLite", stats, examples)


def test_the_loop_agrees_with_the_model_on_postgresql(request: pytest.FixtureRequest) -> None:
    examples = _examples(request, 40, 300)
    stats: Counter[str] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(plans())
    def check(plan: Plan) -> None:
        stats["examples"] += 1
        url = fresh_postgres_database()
        engine = make_engine(url)
        seed_revenue_tables(make_sessionmaker(engine))
        engine.dispose()
        _check(plan, url, lambda what: stats.update([what]))

    check()
    _report("PostgreSQL", stats, examples)
