"""Reports per card, terminal, school/funder, operator; clearing balances to the cent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.errors import Conflict
from backend.ledger.service import account_balance, check_balanced
from backend.reconciliation.service import (
    card_report,
    close_period,
    largest_remainder,
    operator_report,
    period_settlements,
    school_report,
    terminal_report,
)
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

START = datetime(2025, 9, 1, tzinfo=UTC)
END = datetime(2025, 10, 1, tzinfo=UTC)
CARDS = [bytes.fromhex(f"00000000000000{i:02X}") for i in range(1, 8)]


def _populate(db: VLDatabase) -> None:
    seed_revenue_tables(db.factory)
    lille, coach = TerminalSim("GATE-LIL"), TerminalSim("GATE-ARC", station_id=2001)
    till = TerminalSim("CANTINE-1", station_id=None, school_uai="0590001A")
    keys = KeyRing(lille, coach, till)
    lille_records = [lille.record(card, ctr(1)) for card in CARDS[:5]]  # 5 pass validations
    coach_records = [coach.record(card, ctr(2)) for card in CARDS[:2]]  # 2 pass validations
    coach_records.append(
        coach.record(
            CARDS[6],
            ctr(1),
            kind=TransactionKind.SV_DEBIT,
            application="wallet",
            movements=[movement("wallet.sv", -180, 1000)],
        )
    )
    meals = [
        till.record(
            CARDS[5],
            ctr(1),
            kind=TransactionKind.CANTEEN_MEAL,
            application="cursus",
            movements=[movement("cursus.canteen_aid", -250, 250), movement("wallet.sv", -80, 300)],
        )
    ]
    for terminal, records in ((lille, lille_records), (coach, coach_records), (till, meals)):
        db.upload(keys, terminal, terminal.batch(records))
    db.loop().run_once()


def test_largest_remainder_sums_exactly() -> None:
    shares = largest_remainder(1000, {"a": 1, "b": 1, "c": 1})
    assert sum(shares.values()) == 1000 and sorted(shares.values()) == [333, 333, 334]
    assert largest_remainder(10, {}) == {}
    assert sum(largest_remainder(99_999, {"x": 7, "y": 13, "z": 29}).values()) == 99_999


def test_reports(vl_db: VLDatabase) -> None:
    _populate(vl_db)
    with vl_db.factory() as session:
        card = card_report(session, pseudonym_of(CARDS[5]))
        assert card["ledger_balances"] == {"cursus.canteen_aid": -250, "wallet.sv": -80}
        assert card["purses"]["wallet.sv"] == [ctr(1), 220]
        terminal = terminal_report(session, "GATE-LIL")
        assert terminal["taps_by_status"] == {"posted": 5} and terminal["open_gaps"] == []
        schools = school_report(session, START, END)
        assert schools["schools"]["0590001A"] == {"funder:region:canteen": 250, "region:wallet": 80}
        assert schools["by_funder"] == {"funder:region:canteen": 250, "region:wallet": 80}
        operators = operator_report(session, START, END)["operators"]
        assert operators["ilevia"] == {"taps": 5, "pass_validations": 5, "revenue": 0}
        assert operators["arc-en-ciel"] == {"taps": 3, "pass_validations": 2, "revenue": 180}


def test_clearing_shares_the_pass_pool_and_balances_to_the_cent(vl_db: VLDatabase) -> None:
    _populate(vl_db)
    with vl_db.factory() as session, session.begin():
        result = close_period(session, "2025-09", START, END, pass_pool=100_001)
        assert result.pass_shares == {"ilevia": 71_429, "arc-en-ciel": 28_572}
        assert sum(result.pass_shares.values()) == 100_001
        paid = {(s.payer, s.payee): s.amount for s in result.settlements}
        assert paid == {
            ("region:plum", "operator:arc-en-ciel"): 28_572 + 180,
            ("region:plum", "operator:ilevia"): 71_429,
            ("funder:region:canteen", "school:0590001A"): 250,
            ("region:wallet", "school:0590001A"): 80,
        }
        assert result.ledger.total == 0
        assert account_balance(session, "operator:ilevia:revenue") == 0  # settled
        assert account_balance(session, "clearing:region:plum") == 71_429 + 28_572 + 180
        check_balanced(session)
    with vl_db.factory() as session, session.begin():
        assert len(period_settlements(session, "2025-09")) == 4
        with pytest.raises(Conflict):
            close_period(session, "2025-09-bis", START, END)
