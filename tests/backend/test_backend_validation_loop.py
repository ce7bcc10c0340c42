"""The validation loop on SQLite and PostgreSQL: dedup, forgeries, replays, order, gaps.

Card counters are realistic: Calypso counts down (``ctr(n)`` is the counter of session ``n``).
"""

from __future__ import annotations

import json
from typing import Any

from backend.ledger.service import account_balance, check_balanced
from backend.validation.models import TapStatus
from card_schema.uploads.batch import AckStatus
from card_schema.uploads.counters import CARD_COUNTER_MAX, card_tx_counter_of, session_number
from card_schema.uploads.records import TransactionKind
from tests.backend.validation_fixtures import (
    CARNET_PRODUCT,
    CARNET_TRIP_VALUE,
    CardSim,
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

CARD = bytes.fromhex("0000000012345678")
OTHER_CARD = bytes.fromhex("00000000ABCDEF01")


def _open_anomalies(db: VLDatabase, kind: str) -> int:
    return int(
        db.scalar("SELECT count(*) FROM anomalies WHERE kind = :k AND resolved_at IS NULL", k=kind)
    )


def _anomalies(db: VLDatabase, kind: str) -> int:
    return int(db.scalar("SELECT count(*) FROM anomalies WHERE kind = :k", k=kind))


def test_a_realistic_mix_is_posted_and_the_ledger_balances(vl_db: VLDatabase) -> None:
    seed_revenue_tables(vl_db.factory)
    gate = TerminalSim("GATE-LIL-0042")
    till = TerminalSim("CANTINE-0590001", station_id=None, school_uai="0590001A")
    keys = KeyRing(gate, till)
    records = [
        gate.record(CARD, ctr(311)),  # season pass: no movement
        gate.record(
            CARD,
            ctr(312),
            kind=TransactionKind.SV_DEBIT,
            application="wallet",
            movements=[movement("wallet.sv", -180, 1250)],
        ),
        gate.record(
            OTHER_CARD,
            ctr(5),
            kind=TransactionKind.COUNTER_DECREASE,
            movements=[movement("plum.counter.1", -1, 10)],
            product_code=CARNET_PRODUCT,
        ),
    ]
    meal = till.record(
        OTHER_CARD,
        ctr(6),
        kind=TransactionKind.CANTEEN_MEAL,
        application="cursus",
        movements=[movement("cursus.canteen_aid", -250, 250), movement("wallet.sv", -80, 500)],
    )
    assert vl_db.upload(keys, gate, gate.batch(records)).ack.status is AckStatus.ACCEPTED
    assert vl_db.upload(keys, till, till.batch([meal])).ack.status is AckStatus.ACCEPTED

    report = vl_db.loop().run_once()

    assert (report.batches, report.records, report.posted, report.anomalies) == (2, 4, 4, 0)
    card, other = pseudonym_of(CARD), pseudonym_of(OTHER_CARD)
    with vl_db.factory() as session:
        assert check_balanced(session).total == 0
        assert account_balance(session, f"card:{card}:wallet.sv") == -180
        assert account_balance(session, "operator:ilevia:revenue") == 180 + CARNET_TRIP_VALUE
        assert account_balance(session, "plum:carnet_pool") == -CARNET_TRIP_VALUE
        assert account_balance(session, f"card:{other}:cursus.canteen_aid") == -250
        assert account_balance(session, "school:0590001A:aid.canteen") == 250
        assert account_balance(session, "school:0590001A:canteen.wallet") == 80
    purses = json.loads(
        vl_db.scalar("SELECT purses FROM purse_states WHERE card_pseudonym = :p", p=other)
    )
    assert purses == {
        "plum.counter.1": [ctr(5), 9],
        "cursus.canteen_aid": [ctr(6), 0],
        "wallet.sv": [ctr(6), 420],
    }
    # Privacy: no card serial in clear in the tap table.
    assert not vl_db.scalar(
        "SELECT count(*) FROM taps WHERE card_pseudonym LIKE :s", s=f"%{CARD.hex()}%"
    )
    assert vl_db.scalar("SELECT count(*) FROM upload_batches WHERE processed_at IS NULL") == 0


def test_the_same_batch_twice_changes_nothing(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    body = gate.batch([gate.sv_debit(CARD, 1, 1000)])
    loop = vl_db.loop()
    assert vl_db.upload(keys, gate, body).ack.status is AckStatus.ACCEPTED
    loop.run_once()
    before = vl_db.rows("SELECT count(*), sum(amount) FROM ledger_entries")
    again = vl_db.upload(keys, gate, body)
    assert again.ack.status is AckStatus.DUPLICATE and again.status_code == 200
    assert loop.run_once().batches == 0
    assert vl_db.rows("SELECT count(*), sum(amount) FROM ledger_entries") == before
    assert vl_db.scalar("SELECT count(*) FROM taps") == 1
    assert vl_db.scalar("SELECT count(*) FROM upload_batches") == 1


def test_a_record_sent_again_in_another_batch_is_a_no_op(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    first = gate.record(CARD, ctr(1))
    second = gate.record(CARD, ctr(2))
    vl_db.upload(keys, gate, gate.batch([first]))
    vl_db.upload(keys, gate, gate.batch([first, second]))  # another batch id, overlapping
    vl_db.loop().run_once()
    assert vl_db.scalar("SELECT count(*) FROM taps") == 2
    assert _anomalies(vl_db, "sequence_reuse") == 0


def test_a_forged_signature_flags_the_card_and_posts_nothing(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    forged = gate.record(
        CARD,
        ctr(7),
        kind=TransactionKind.SV_DEBIT,
        application="wallet",
        movements=[movement("wallet.sv", -100, 1000)],
        forge=True,
    )
    vl_db.upload(keys, gate, gate.batch([forged]))
    report = vl_db.loop().run_once()
    assert report.posted == 0
    assert _anomalies(vl_db, "forged_signature") == 1
    assert vl_db.scalar("SELECT status FROM taps") == TapStatus.FORGED
    assert vl_db.scalar("SELECT charged FROM taps") in (False, 0)
    assert vl_db.rows("SELECT card_serial, reason FROM deny_candidates") == [
        (CARD.hex().upper(), "forged_signature")
    ]
    assert vl_db.scalar("SELECT count(*) FROM ledger_entries") == 0


def test_a_replayed_card_counter_is_not_charged_twice(vl_db: VLDatabase) -> None:
    gate, other_gate = TerminalSim("GATE-1"), TerminalSim("GATE-2", sam_serial=b"\x5a\0\0\x02")
    keys = KeyRing(gate, other_gate)
    debit = {
        "kind": TransactionKind.SV_DEBIT,
        "application": "wallet",
        "movements": [movement("wallet.sv", -100, 1000)],
    }
    vl_db.upload(keys, gate, gate.batch([gate.record(CARD, ctr(40), **debit)]))
    loop = vl_db.loop()
    loop.run_once()
    vl_db.upload(keys, other_gate, other_gate.batch([other_gate.record(CARD, ctr(40), **debit)]))
    loop.run_once()
    assert _anomalies(vl_db, "replay") == 1
    statuses = sorted(r[0] for r in vl_db.rows("SELECT status FROM taps"))
    assert statuses == sorted([TapStatus.POSTED, TapStatus.REPLAY])
    with vl_db.factory() as session:
        assert account_balance(session, f"card:{pseudonym_of(CARD)}:wallet.sv") == -100
        check_balanced(session)


def test_an_aborted_session_does_not_hold_the_card_counter(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    debit = {
        "kind": TransactionKind.SV_DEBIT,
        "application": "wallet",
        "movements": [movement("wallet.sv", -170, 1250)],
    }
    refused = gate.record(CARD, ctr(77), committed=False, **debit)
    retried = gate.record(CARD, ctr(77), **debit)
    vl_db.upload(keys, gate, gate.batch([refused, retried]))
    report = vl_db.loop().run_once()
    assert report.posted == 1 and report.anomalies == 0
    assert sorted(r[0] for r in vl_db.rows("SELECT status FROM taps")) == ["aborted", "posted"]


def test_reordered_records_still_chain(vl_db: VLDatabase) -> None:
    gate_a, gate_b = TerminalSim("GATE-A"), TerminalSim("GATE-B", sam_serial=b"\x5a\0\0\x02")
    keys = KeyRing(gate_a, gate_b)

    loop = vl_db.loop()
    # Session 12 (from gate B) arrives before 10 and 11 (gate A uploads late).
    vl_db.upload(keys, gate_b, gate_b.batch([gate_b.sv_debit(CARD, 12, 800)]))
    loop.run_once()
    vl_db.upload(keys, gate_a, gate_a.batch([gate_a.sv_debit(CARD, 10, 1000)]))
    loop.run_once()
    vl_db.upload(keys, gate_a, gate_a.batch([gate_a.sv_debit(CARD, 11, 900)]))
    loop.run_once()
    assert _anomalies(vl_db, "chain_break") == 0
    assert _open_anomalies(vl_db, "card_counter_gap") == 0
    state = json.loads(
        vl_db.scalar(
            "SELECT purses FROM purse_states WHERE card_pseudonym = :p", p=pseudonym_of(CARD)
        )
    )
    assert state == {"wallet.sv": [ctr(12), 700]}
    with vl_db.factory() as session:
        assert account_balance(session, f"card:{pseudonym_of(CARD)}:wallet.sv") == -300


def test_a_broken_chain_is_an_anomaly(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    records = [
        gate.sv_debit(CARD, 1, 1000),
        gate.record(
            CARD,
            ctr(2),
            kind=TransactionKind.SV_DEBIT,
            application="wallet",
            movements=[movement("wallet.sv", -100, 5000)],  # the purse grew from nowhere
        ),
    ]
    vl_db.upload(keys, gate, gate.batch(records))
    vl_db.loop().run_once()
    assert _anomalies(vl_db, "chain_break") == 1


def test_a_terminal_gap_later_filled(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    loop = vl_db.loop()
    r1, r2, r3, r4 = (gate.record(CARD, ctr(n)) for n in (1, 2, 3, 4))
    vl_db.upload(keys, gate, gate.batch([r1, r2]))
    vl_db.upload(keys, gate, gate.batch([r4]))  # 1004 before 1003, which is not declared
    loop.run_once()
    assert _open_anomalies(vl_db, "sequence_gap") == 1
    vl_db.upload(keys, gate, gate.batch([r3]))
    loop.run_once()
    assert _open_anomalies(vl_db, "sequence_gap") == 0
    assert _anomalies(vl_db, "sequence_gap") == 1
    assert _open_anomalies(vl_db, "card_counter_gap") == 0
    assert vl_db.scalar("SELECT count(*) FROM gaps WHERE closed_at IS NULL") == 0


def test_an_uncertain_record_is_no_gap_until_dropped(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    loop = vl_db.loop()
    r1, pending, r3 = (
        gate.record(CARD, ctr(1)),
        gate.record(OTHER_CARD, ctr(8)),
        gate.record(CARD, ctr(2)),
    )
    vl_db.upload(keys, gate, gate.batch([r1, r3], uncertain=[pending]))
    loop.run_once()
    assert _anomalies(vl_db, "sequence_gap") == 0
    assert vl_db.scalar("SELECT state FROM gaps WHERE scope = 'terminal'") == "uncertain"
    # Next batch: the record is neither sent nor declared uncertain any more: now it is a gap.
    vl_db.upload(keys, gate, gate.batch([gate.record(CARD, ctr(3))]))
    loop.run_once()
    assert _open_anomalies(vl_db, "sequence_gap") == 1
    # It finally arrives (decided at the card's next tap): explained.
    vl_db.upload(keys, gate, gate.batch([pending]))
    loop.run_once()
    assert _open_anomalies(vl_db, "sequence_gap") == 0


def test_a_missing_session_is_recovered_from_the_card_log_and_not_charged_twice(
    vl_db: VLDatabase,
) -> None:
    seed_revenue_tables(vl_db.factory)
    gate_a, gate_b = TerminalSim("GATE-A"), TerminalSim("GATE-B", sam_serial=b"\x5a\0\0\x02")
    keys = KeyRing(gate_a, gate_b)
    loop = vl_db.loop()
    wallet = {"kind": TransactionKind.SV_DEBIT, "application": "wallet"}
    first = gate_a.record(CARD, ctr(10), movements=[movement("wallet.sv", -100, 1000)], **wallet)
    lost = gate_a.record(CARD, ctr(11), movements=[movement("wallet.sv", -170, 900)], **wallet)
    assert lost.intent.written_event is not None and first.intent.written_event is not None
    later = gate_b.record(
        CARD,
        ctr(12),
        movements=[movement("wallet.sv", -100, 730)],
        last_events=[lost.intent.written_event, first.intent.written_event],
        **wallet,
    )
    vl_db.upload(keys, gate_a, gate_a.batch([first]))
    vl_db.upload(keys, gate_b, gate_b.batch([later]))
    loop.run_once()
    card = pseudonym_of(CARD)
    recovered = "SELECT {} FROM taps WHERE card_tx_counter = :c"
    assert vl_db.scalar(recovered.format("status"), c=ctr(11)) == "recovered"
    assert vl_db.scalar(recovered.format("written_event"), c=ctr(11)) == (
        lost.intent.written_event.hex().upper()
    )
    assert _open_anomalies(vl_db, "card_counter_gap") == 0
    assert _open_anomalies(vl_db, "recovered_from_card_log") == 1
    assert _anomalies(vl_db, "chain_break") == 0
    with vl_db.factory() as session:
        assert account_balance(session, f"card:{card}:wallet.sv") == -370
        assert account_balance(session, "suspense:card_log_recovery") == 170
    # The original arrives: its posting corrects the recovered one, the card is charged once.
    vl_db.upload(keys, gate_a, gate_a.batch([lost]))
    loop.run_once()
    assert _open_anomalies(vl_db, "recovered_from_card_log") == 0
    assert _anomalies(vl_db, "replay") == 0
    with vl_db.factory() as session:
        assert account_balance(session, f"card:{card}:wallet.sv") == -370
        assert account_balance(session, "suspense:card_log_recovery") == 0
        assert account_balance(session, "operator:ilevia:revenue") == 370
        check_balanced(session)


def test_ring_fenced_aid_cannot_pay_for_something_else(vl_db: VLDatabase) -> None:
    till = TerminalSim("CANTINE-1", station_id=None, school_uai="0590001A")
    keys = KeyRing(till)
    meal_paid_with_books_aid = till.record(
        CARD,
        ctr(3),
        kind=TransactionKind.CANTEEN_MEAL,
        application="cursus",
        movements=[movement("cursus.books_aid", -300, 3000)],
    )
    vl_db.upload(keys, till, till.batch([meal_paid_with_books_aid]))
    vl_db.loop().run_once()
    assert _anomalies(vl_db, "ring_fence_violation") == 1
    with vl_db.factory() as session:
        assert account_balance(session, "suspense:ring_fence") == 300
        assert account_balance(session, "school:0590001A:aid.books") == 0
        check_balanced(session)


def test_chunks_split_on_batch_boundaries(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    for first in range(1, 31, 3):
        records = [gate.record(CARD, ctr(n)) for n in range(first, first + 3)]
        vl_db.upload(keys, gate, gate.batch(records))
    report = vl_db.loop(chunk_records=7).run_once()
    assert (report.batches, report.posted, report.anomalies) == (10, 30, 0)


def test_the_session_number_counts_up_as_the_calypso_counter_counts_down() -> None:
    assert CARD_COUNTER_MAX == 0xFFFFFF
    assert session_number(0xFFFFFF) == 0  # a fresh card's first session
    assert session_number(0xFFFFFE) == 1
    assert [session_number(ctr(n)) for n in range(5)] == [0, 1, 2, 3, 4]
    assert all(card_tx_counter_of(session_number(c)) == c for c in (0, 1, 0x7FFFFF, 0xFFFFFF))
    card = CardSim(CARD, used=3)
    assert [card.session(), card.session()] == [0xFFFFFC, 0xFFFFFB]


def test_desk_reload_then_gate_taps_on_a_down_counting_card_chain(vl_db: VLDatabase) -> None:
    """The demo's case: the desk loads a fresh card, then gates debit it (counters go down).

    Read as ascending, the desk's sessions (highest counters) looked like the card's LAST
    sessions, and every gate tap broke the chain.
    """
    seed_revenue_tables(vl_db.factory)
    desk = TerminalSim("DESK-LILLE-1", sam_serial=b"\x5a\0\0\x09", station_id=None)
    gate_a, gate_b = TerminalSim("GATE-A"), TerminalSim("GATE-B", sam_serial=b"\x5a\0\0\x02")
    keys = KeyRing(desk, gate_a, gate_b)
    card = CardSim(CARD)  # fresh from the factory: 0xFFFFFF
    wallet: dict[str, Any] = {"application": "wallet", "product_code": None}
    carnet: dict[str, Any] = {
        "kind": TransactionKind.COUNTER_DECREASE,
        "product_code": CARNET_PRODUCT,
    }
    issued = [
        desk.record(
            CARD,
            card.session(),  # 0xFFFFFF: session 0
            kind=TransactionKind.LOAD,
            movements=[movement("plum.counter.1", 10, 0)],
            product_code=CARNET_PRODUCT,
        ),
        desk.record(
            CARD,
            card.session(),  # 0xFFFFFE: session 1
            kind=TransactionKind.SV_RELOAD,
            movements=[movement("wallet.sv", 2000, 0)],
            **wallet,
        ),
    ]
    morning = [
        gate_a.record(
            CARD, card.session(), movements=[movement("plum.counter.1", -1, 10)], **carnet
        ),
        gate_a.record(
            CARD,
            card.session(),
            kind=TransactionKind.SV_DEBIT,
            movements=[movement("wallet.sv", -170, 2000)],
            **wallet,
        ),
    ]
    evening = [
        gate_b.record(
            CARD, card.session(), movements=[movement("plum.counter.1", -1, 9)], **carnet
        ),
        gate_b.record(
            CARD,
            card.session(),
            kind=TransactionKind.SV_DEBIT,
            movements=[movement("wallet.sv", -170, 1830)],
            **wallet,
        ),
    ]
    assert [r.intent.card_tx_counter for r in issued + morning + evening] == [
        0xFFFFFF - n for n in range(6)
    ]
    loop = vl_db.loop()
    vl_db.upload(keys, desk, desk.batch(issued))
    loop.run_once()
    # The evening gate uploads before the morning one (an offline gate catching up).
    vl_db.upload(keys, gate_b, gate_b.batch(evening))
    loop.run_once()
    assert _open_anomalies(vl_db, "card_counter_gap") == 2  # sessions 2 and 3, not received yet
    vl_db.upload(keys, gate_a, gate_a.batch(morning))
    report = loop.run_once()

    assert report.posted == 2
    assert _anomalies(vl_db, "chain_break") == 0
    assert _open_anomalies(vl_db, "card_counter_gap") == 0
    assert vl_db.scalar("SELECT count(*) FROM anomalies WHERE resolved_at IS NULL") == 0
    pseudonym = pseudonym_of(CARD)
    state = vl_db.rows(
        "SELECT last_counter, purses FROM purse_states WHERE card_pseudonym = :p", p=pseudonym
    )
    assert state[0][0] == 0xFFFFFA  # the latest session: the LOWEST counter
    assert json.loads(state[0][1]) == {
        "plum.counter.1": [0xFFFFFB, 8],
        "wallet.sv": [0xFFFFFA, 1660],
    }
    with vl_db.factory() as session:
        assert account_balance(session, f"card:{pseudonym}:wallet.sv") == 2000 - 340
        assert account_balance(session, "operator:ilevia:revenue") == 340 + 2 * CARNET_TRIP_VALUE
        check_balanced(session)


def test_an_ascending_counter_sequence_is_flagged(vl_db: VLDatabase) -> None:
    """A forged or buggy terminal reporting counters that go UP: the purse chain breaks."""
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    debit: dict[str, Any] = {"kind": TransactionKind.SV_DEBIT, "application": "wallet"}
    start = ctr(10)
    records = [
        gate.record(
            CARD, start + i, movements=[movement("wallet.sv", -100, 1000 - 100 * i)], **debit
        )
        for i in range(3)  # balances chain in upload order, counters go up: wrong direction
    ]
    vl_db.upload(keys, gate, gate.batch(records))
    vl_db.loop().run_once()
    breaks = vl_db.rows(
        "SELECT card_tx_counter, detail FROM anomalies WHERE kind = 'chain_break' "
        "ORDER BY card_tx_counter"
    )
    assert [counter for counter, _ in breaks] == [start + 1, start + 2]
    assert f"session at counter {start} started from 1000" in breaks[0][1]
