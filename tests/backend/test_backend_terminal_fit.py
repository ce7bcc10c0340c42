"""Uploaded records checked against the terminal's kind and registered SAM, on both databases.

Found by fuzzing: a gate uploaded a wallet reload of +500 € and it was posted to its sales account;
a bike-shelter door uploaded a canteen meal and it was posted for the canteen funder to pay. Such
records become ``kind_violation`` / ``sam_mismatch`` anomalies and their money waits in suspense.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from backend.auth.roles import TerminalKind
from backend.ledger.service import account_balance, check_balanced
from backend.terminals.service import register_terminal
from card_schema.uploads.batch import AckStatus
from card_schema.uploads.records import TransactionKind
from tests.backend.validation_fixtures import (
    KeyRing,
    TerminalSim,
    VLDatabase,
    ctr,
    movement,
    pseudonym_of,
    seed_revenue_tables,
    vl_db,
)

__all__ = ["vl_db"]

CARD = bytes.fromhex("0000000012345678")


def _register(db: VLDatabase, sim: TerminalSim, kind: TerminalKind) -> None:
    with db.factory() as session, session.begin():
        register_terminal(
            session,
            terminal_id=sim.terminal_id,
            kind=kind,
            station_id=sim.station_id,
            school_uai=sim.school_uai,
            sam_serial=sim.sam_serial,
            public_key=sim.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw),
        )


def _payee_balances(db: VLDatabase) -> list[tuple[str, int]]:
    """Every account with money that is neither a card purse nor suspense."""
    return [
        (account, total)
        for account, total in db.rows(
            "SELECT account, sum(amount) FROM ledger_entries GROUP BY account"
        )
        if not account.startswith(("card:", "suspense:")) and total != 0
    ]


def _anomaly_kinds(db: VLDatabase) -> list[str]:
    return [row[0] for row in db.rows("SELECT kind FROM anomalies ORDER BY id")]


def test_a_gate_uploading_a_wallet_reload_is_a_kind_violation(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-LIL-0042", sam_serial=bytes.fromhex("5A0000A1"))
    _register(vl_db, gate, TerminalKind.GATE)
    reload = gate.record(
        CARD,
        ctr(1),
        kind=TransactionKind.SV_RELOAD,
        application="wallet",
        movements=[movement("wallet.sv", 50_000, 0)],
    )
    assert vl_db.upload(KeyRing(gate), gate, gate.batch([reload])).ack.status is AckStatus.ACCEPTED
    vl_db.loop().run_once()
    assert _anomaly_kinds(vl_db) == ["kind_violation"]
    assert _payee_balances(vl_db) == []
    with vl_db.factory() as session:
        assert check_balanced(session).total == 0
        assert account_balance(session, "suspense:kind_violation") == -50_000
        assert account_balance(session, "sales:GATE-LIL-0042") == 0
        assert account_balance(session, f"card:{pseudonym_of(CARD)}:wallet.sv") == 50_000


def test_a_bike_shelter_door_uploading_a_canteen_meal_is_a_kind_violation(
    vl_db: VLDatabase,
) -> None:
    door = TerminalSim("BIKE-LIL-01", sam_serial=bytes.fromhex("5A0000B1"), school_uai="0590001A")
    _register(vl_db, door, TerminalKind.BIKE_SHELTER)
    meal = door.record(
        CARD,
        ctr(1),
        kind=TransactionKind.CANTEEN_MEAL,
        application="cursus",
        movements=[movement("cursus.canteen_aid", -250, 250)],
    )
    vl_db.upload(KeyRing(door), door, door.batch([meal]))
    vl_db.loop().run_once()
    assert _anomaly_kinds(vl_db) == ["kind_violation"]
    assert _payee_balances(vl_db) == []
    with vl_db.factory() as session:
        assert account_balance(session, "school:0590001A:aid.canteen") == 0
        assert account_balance(session, "suspense:kind_violation") == 250


def test_a_record_signed_by_another_sam_is_a_sam_mismatch(vl_db: VLDatabase) -> None:
    seed_revenue_tables(vl_db.factory)
    gate = TerminalSim("GATE-LIL-0042", sam_serial=bytes.fromhex("5A0000C1"))
    _register(vl_db, gate, TerminalKind.GATE)
    gate.sam_serial = bytes.fromhex("5A0000C2")  # a SAM taken from another device
    debit = gate.sv_debit(CARD, 1, 1000)
    vl_db.upload(KeyRing(gate), gate, gate.batch([debit]))
    vl_db.loop().run_once()
    assert _anomaly_kinds(vl_db) == ["sam_mismatch"]
    assert _payee_balances(vl_db) == []
    with vl_db.factory() as session:
        assert account_balance(session, "suspense:sam_mismatch") == 100


def test_records_that_fit_are_posted_as_before(vl_db: VLDatabase) -> None:
    seed_revenue_tables(vl_db.factory)
    gate = TerminalSim("GATE-LIL-0042", sam_serial=bytes.fromhex("5A0000D1"))
    till = TerminalSim(
        "CANTINE-0590001",
        sam_serial=bytes.fromhex("5A0000D2"),
        station_id=None,
        school_uai="0590001A",
    )
    _register(vl_db, gate, TerminalKind.GATE)
    _register(vl_db, till, TerminalKind.CANTEEN)
    keys = KeyRing(gate, till)
    vl_db.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 1, 1000)]))
    meal = till.record(
        CARD,
        ctr(2),
        kind=TransactionKind.CANTEEN_MEAL,
        application="cursus",
        movements=[movement("cursus.canteen_aid", -250, 250)],
    )
    vl_db.upload(keys, till, till.batch([meal]))
    vl_db.loop().run_once()
    assert _anomaly_kinds(vl_db) == []
    assert dict(_payee_balances(vl_db)) == {
        "operator:ilevia:revenue": 100,
        "school:0590001A:aid.canteen": 250,
    }
