"""The double-entry ledger: entries balance, corrections are new entries, posting rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from backend.ledger.accounts import SessionContext, aid_purpose, session_posting
from backend.ledger.models import LedgerEntry
from backend.ledger.service import (
    LedgerError,
    LedgerImbalance,
    account_balance,
    balances,
    check_balanced,
    post_entry,
    reverse_entry,
)
from tests.backend.validation_fixtures import VLDatabase, vl_db

__all__ = ["vl_db"]

AT = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


def _ctx(kind: str, **kwargs: object) -> SessionContext:
    values: dict[str, object] = {
        "kind": kind,
        "card": "P1-abc",
        "terminal_id": "T1",
        "operator_id": "ilevia",
        "school_uai": None,
        "trip_value": 0,
    }
    values.update(kwargs)
    return SessionContext(**values)  # type: ignore[arg-type]


def _mv(purse: str, amount: int, unit: str = "eurocent") -> dict[str, object]:
    return {
        "purse": purse,
        "unit": unit,
        "amount": amount,
        "balance_before": 0,
        "balance_after": amount,
    }


def test_every_posting_rule_balances() -> None:
    cases = [
        (_ctx("sv_debit"), [_mv("wallet.sv", -180)]),
        (_ctx("sv_reload"), [_mv("wallet.sv", 2000)]),
        (_ctx("load"), [_mv("cursus.canteen_aid", 5000)]),
        (
            _ctx("canteen_meal", school_uai="0590001A"),
            [_mv("cursus.canteen_aid", -250), _mv("wallet.sv", -80)],
        ),
        (_ctx("aid_debit", operator_id=None), [_mv("cursus.books_aid", -1200)]),
        (_ctx("counter_decrease", trip_value=165), [_mv("plum.counter.1", -2, "count")]),
        (_ctx("validation"), []),
    ]
    for ctx, movements in cases:
        posting = session_posting(ctx, movements)
        assert sum(amount for _, amount in posting.lines) == 0
        assert posting.violation is None, (ctx.kind, posting.violation)
    meal = session_posting(cases[3][0], cases[3][1]).lines
    assert ("school:0590001A:aid.canteen", 250) in meal
    assert ("school:0590001A:canteen.wallet", 80) in meal
    carnet = session_posting(cases[5][0], cases[5][1]).lines
    assert carnet == [("operator:ilevia:revenue", 330), ("plum:carnet_pool", -330)]


def test_ring_fenced_aid_goes_to_suspense() -> None:
    posting = session_posting(_ctx("sv_debit"), [_mv("cursus.sport_aid", -500)])
    assert posting.violation is not None and "ring-fenced" in posting.violation
    assert ("suspense:ring_fence", 500) in posting.lines
    assert aid_purpose("cursus.canteen_aid") == "canteen"
    assert aid_purpose("wallet.sv") is None


def test_post_check_and_correct(vl_db: VLDatabase) -> None:
    with vl_db.factory() as session, session.begin():
        post_entry(
            session,
            "tap:T1:1",
            [("card:P:wallet.sv", -180), ("operator:x:revenue", 180)],
            occurred_at=AT,
            kind="tap",
        )
        with pytest.raises(LedgerError):
            post_entry(session, "bad", [("a", 1), ("b", 2)], occurred_at=AT, kind="tap")
        with pytest.raises(LedgerError):
            post_entry(session, "tap:T1:1", [("a", 1), ("b", -1)], occurred_at=AT, kind="tap")
        fix = reverse_entry(session, "tap:T1:1", reason="refund")
        with pytest.raises(LedgerError):
            reverse_entry(session, "tap:T1:1", reason="again")
        assert account_balance(session, "operator:x:revenue") == 0
        assert balances(session, "card:") == {"card:P:wallet.sv": 0}
        # Nothing was deleted: the original and its correction are both there.
        assert session.scalar(select(func.count(LedgerEntry.id))) == 4
        assert (
            session.scalar(
                select(LedgerEntry.reverses).where(LedgerEntry.entry_ref == fix).limit(1)
            )
            == "tap:T1:1"
        )
        check = check_balanced(session)
        assert (check.entries, check.lines, check.total) == (2, 4, 0)


def test_an_unbalanced_table_is_detected(vl_db: VLDatabase) -> None:
    with vl_db.factory() as session, session.begin():
        session.add(
            LedgerEntry(
                entry_ref="broken", line=0, account="a", amount=5, occurred_at=AT, kind="tap"
            )
        )
        session.flush()
        with pytest.raises(LedgerImbalance, match="broken"):
            check_balanced(session)
