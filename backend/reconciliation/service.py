"""Reconciliation reports and clearing (no FastAPI imports).

Clearing rule (``docs/validation-loop.md``, "Clearing"): closing a period ``[start, end)``

1. shares the PLUM season-pass pool among operators pro rata of the pass validations on their
   stations (charged ``validation`` taps without movement), largest remainder, so the shares
   sum to the pool to the cent; posted ``plum:pass_pool`` -> ``operator:<id>:revenue``;
2. settles every payee account's balance over the period: operator revenue (paid by
   ``region:plum``), aid spent at schools, merchants and operators (paid by the aid's funder
   ``funder:region:<purpose>``), wallet spent at schools and terminals (``region:wallet``);
   each settlement is a row in ``settlements`` and an entry moving the balance to
   ``clearing:<payer>``;
3. leaves the ledger balanced (checked before returning).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from backend.columns import utcnow
from backend.errors import Conflict, InvalidRequest, NotFound
from backend.labels import ANOMALY_STATES_FR, anomaly_kind_fr
from backend.ledger.accounts import PASS_POOL, funder_account, operator_account
from backend.ledger.models import LedgerEntry
from backend.ledger.service import LedgerCheck, check_balanced, post_entry
from backend.reconciliation.models import ClearingPeriod, Settlement
from backend.validation.models import Anomaly, Gap, PurseState, Tap, TerminalState


@dataclass(frozen=True)
class SettlementLine:
    """One settlement of a period."""

    payer: str
    payee: str
    account: str
    amount: int


@dataclass(frozen=True)
class ClearingResult:
    """What :func:`close_period` produced."""

    period_id: str
    pass_shares: dict[str, int]
    settlements: list[SettlementLine]
    ledger: LedgerCheck


def _payer_of(account: str) -> tuple[str, str] | None:
    """``(payer, payee)`` for a payee account, ``None`` for accounts not settled at clearing."""
    parts = account.split(":")
    if len(parts) != 3 or parts[0] not in ("operator", "school", "merchant", "terminal"):
        return None
    payee = f"{parts[0]}:{parts[1]}"
    what = parts[2]
    if what.startswith("aid."):
        return funder_account(what[len("aid.") :]), payee
    if parts[0] == "operator" and what == "revenue":
        return "region:plum", payee
    if what in ("canteen.wallet", "revenue"):
        return "region:wallet", payee
    return None


def largest_remainder(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split ``total`` eurocents pro rata of ``weights``; the parts sum to ``total`` exactly.

    Ties in remainders go to the larger weight, then the name (deterministic).
    """
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        return {}
    shares = {name: total * weight // weight_sum for name, weight in weights.items()}
    left = total - sum(shares.values())
    order = sorted(weights, key=lambda n: (-(total * weights[n] % weight_sum), -weights[n], n))
    for name in order[:left]:
        shares[name] += 1
    return shares


def pass_validations(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Charged season-pass validations (no movement) per operator in ``[start, end)``."""
    rows = session.execute(
        select(Tap.operator_id, func.count())
        .where(
            Tap.charged.is_(True),
            Tap.kind == "validation",
            Tap.movements == "[]",
            Tap.operator_id.is_not(None),
            Tap.occurred_at >= start,
            Tap.occurred_at < end,
        )
        .group_by(Tap.operator_id)
    )
    return {str(operator): int(count) for operator, count in rows}


def _period_balances(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    rows = session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount))
        .where(
            LedgerEntry.occurred_at >= start,
            LedgerEntry.occurred_at < end,
            LedgerEntry.kind != "clearing",
        )
        .group_by(LedgerEntry.account)
    )
    return {account: int(total) for account, total in rows}


def close_period(
    session: Session, period_id: str, start: datetime, end: datetime, *, pass_pool: int = 0
) -> ClearingResult:
    """Close ``[start, end)``: share the pass pool, settle payees, record it all.

    Raises:
        InvalidRequest: empty period or negative pool.
        Conflict: the period id exists or overlaps a closed period.
    """
    if end <= start or pass_pool < 0:
        raise InvalidRequest("période ou montant invalide", "invalid period or pass pool")
    overlapping = session.scalar(
        select(ClearingPeriod.period_id).where(
            (ClearingPeriod.period_id == period_id)
            | ((ClearingPeriod.starts_at < end) & (ClearingPeriod.ends_at > start))
        )
    )
    if overlapping is not None:
        raise Conflict(
            f"période déjà close ou chevauchante ({overlapping})",
            f"period already closed or overlapping ({overlapping})",
        )
    at = end - timedelta(milliseconds=1)
    shares = largest_remainder(pass_pool, pass_validations(session, start, end))
    if shares:
        lines = [(PASS_POOL, -pass_pool)] + [
            (operator_account(operator), share) for operator, share in sorted(shares.items())
        ]
        post_entry(session, f"clr:{period_id}:pass", lines, occurred_at=at, kind="pass_share")
    settlements: list[SettlementLine] = []
    for account, amount in sorted(_period_balances(session, start, end).items()):
        parties = _payer_of(account)
        if parties is None or amount == 0:
            continue
        payer, payee = parties
        settlements.append(SettlementLine(payer, payee, account, amount))
        post_entry(
            session,
            f"clr:{period_id}:{account}",
            [(account, -amount), (f"clearing:{payer}", amount)],
            occurred_at=at,
            kind="clearing",
        )
    session.add(
        ClearingPeriod(period_id=period_id, starts_at=start, ends_at=end, pass_pool=pass_pool)
    )
    if settlements:
        session.execute(
            insert(Settlement),
            [
                {
                    "period_id": period_id,
                    "payer": s.payer,
                    "payee": s.payee,
                    "account": s.account,
                    "amount": s.amount,
                }
                for s in settlements
            ],
        )
    session.flush()
    return ClearingResult(period_id, shares, settlements, check_balanced(session))


def period_settlements(session: Session, period_id: str) -> list[SettlementLine]:
    """Settlements of a closed period.

    Raises:
        NotFound: no such period.
    """
    if (
        session.scalar(select(ClearingPeriod.id).where(ClearingPeriod.period_id == period_id))
        is None
    ):
        raise NotFound(f"période {period_id} inconnue", f"unknown period {period_id}")
    rows = session.scalars(
        select(Settlement).where(Settlement.period_id == period_id).order_by(Settlement.id)
    )
    return [SettlementLine(s.payer, s.payee, s.account, s.amount) for s in rows]


def card_report(session: Session, card_pseudonym: str) -> dict[str, Any]:
    """A card's taps, purse states, ledger balances and anomalies (by pseudonym).

    Raises:
        NotFound: nothing is known under this pseudonym.
    """
    taps = session.execute(
        select(
            Tap.card_tx_counter,
            Tap.kind,
            Tap.status,
            Tap.charged,
            Tap.terminal_id,
            Tap.terminal_seq,
            Tap.occurred_at,
            Tap.movements,
        )
        .where(Tap.card_pseudonym == card_pseudonym)
        .order_by(Tap.card_tx_counter.desc(), Tap.id)  # counters count down: oldest first
    ).all()
    state = session.get(PurseState, card_pseudonym)
    if not taps and state is None:
        raise NotFound("carte inconnue", f"no taps under pseudonym {card_pseudonym}")
    prefix = f"card:{card_pseudonym}:"
    balances = {
        account[len(prefix) :]: int(total)
        for account, total in session.execute(
            select(LedgerEntry.account, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.account.startswith(prefix, autoescape=True))
            .group_by(LedgerEntry.account)
        )
    }
    return {
        "card_pseudonym": card_pseudonym,
        "taps": [
            {
                "card_tx_counter": t.card_tx_counter,
                "kind": t.kind,
                "status": t.status,
                "charged": t.charged,
                "terminal_id": t.terminal_id,
                "terminal_seq": t.terminal_seq,
                "occurred_at": t.occurred_at.isoformat(),
                "movements": json.loads(t.movements),
            }
            for t in taps
        ],
        "purses": {} if state is None else json.loads(state.purses),
        "last_counter": None if state is None else state.last_counter,
        "ledger_balances": balances,
        "anomalies": _anomalies(session, Anomaly.card_pseudonym == card_pseudonym),
    }


def terminal_report(session: Session, terminal_id: str) -> dict[str, Any]:
    """A terminal's taps by status, sequence state, open gaps, anomalies.

    Raises:
        NotFound: nothing received from this terminal.
    """
    counts = {
        status: int(n)
        for status, n in session.execute(
            select(Tap.status, func.count())
            .where(Tap.terminal_id == terminal_id)
            .group_by(Tap.status)
        )
    }
    state = session.get(TerminalState, terminal_id)
    if not counts and state is None:
        raise NotFound("terminal sans données", f"nothing received from {terminal_id}")
    gaps = session.execute(
        select(Gap.number, Gap.state)
        .where(Gap.scope == "terminal", Gap.subject == terminal_id, Gap.closed_at.is_(None))
        .order_by(Gap.number)
    ).all()
    return {
        "terminal_id": terminal_id,
        "taps_by_status": counts,
        "last_seq": None if state is None else state.last_seq,
        "open_gaps": [{"terminal_seq": n, "state": s} for n, s in gaps],
        "anomalies": _anomalies(session, Anomaly.terminal_id == terminal_id),
    }


def _split(account: str) -> tuple[str, str, str]:
    kind, _, rest = account.partition(":")
    who, _, what = rest.partition(":")
    return kind, who, what


def school_report(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Per school: aid spent per funder, wallet spent, in ``[start, end)``."""
    schools: dict[str, dict[str, int]] = {}
    for account, amount in _period_balances(session, start, end).items():
        kind, uai, what = _split(account)
        if kind != "school" or amount == 0:
            continue
        payer = _payer_of(account)
        key = payer[0] if payer is not None else what
        schools.setdefault(uai, {})[key] = schools.get(uai, {}).get(key, 0) + amount
    funders: dict[str, int] = {}
    for amounts in schools.values():
        for funder, amount in amounts.items():
            funders[funder] = funders.get(funder, 0) + amount
    return {"schools": schools, "by_funder": funders}


def operator_report(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Per transit operator: charged taps, pass validations, revenue in ``[start, end)``."""
    taps = {
        str(op): int(n)
        for op, n in session.execute(
            select(Tap.operator_id, func.count())
            .where(
                Tap.charged.is_(True),
                Tap.operator_id.is_not(None),
                Tap.occurred_at >= start,
                Tap.occurred_at < end,
            )
            .group_by(Tap.operator_id)
        )
    }
    revenue: dict[str, int] = {}
    for account, amount in _period_balances(session, start, end).items():
        kind, operator, _ = _split(account)
        if kind == "operator":
            revenue[operator] = revenue.get(operator, 0) + amount
    passes = pass_validations(session, start, end)
    names = sorted(set(taps) | set(revenue))
    return {
        "operators": {
            name: {
                "taps": taps.get(name, 0),
                "pass_validations": passes.get(name, 0),
                "revenue": revenue.get(name, 0),
            }
            for name in names
        }
    }


def _anomalies(session: Session, condition: Any, limit: int = 200) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Anomaly).where(condition).order_by(Anomaly.id.desc()).limit(limit)
    )
    return [anomaly_json(a) for a in rows]


def anomaly_json(anomaly: Anomaly) -> dict[str, Any]:
    """The JSON form of an anomaly in reports."""
    return {
        "id": anomaly.id,
        "kind": anomaly.kind,
        "terminal_id": anomaly.terminal_id,
        "terminal_seq": anomaly.terminal_seq,
        "card_pseudonym": anomaly.card_pseudonym,
        "card_tx_counter": anomaly.card_tx_counter,
        "detail": anomaly.detail,
        "detected_at": anomaly.detected_at.isoformat(),
        "resolved": anomaly.resolved_at is not None,
        "resolution": anomaly.resolution,
        "kind_fr": anomaly_kind_fr(anomaly.kind),
        "state_fr": ANOMALY_STATES_FR["resolved" if anomaly.resolved_at else "open"],
    }


def list_anomalies(
    session: Session,
    *,
    kind: str | None = None,
    open_only: bool = False,
    limit: int = 200,
    terminal_id: str | None = None,
    card_pseudonym: str | None = None,
    state: str | None = None,
) -> list[dict[str, Any]]:
    """Latest anomalies, filtered by kind, terminal, card pseudonym and state (``open`` or
    ``resolved``; ``open_only`` is ``state="open"``)."""
    query = select(Anomaly).order_by(Anomaly.id.desc()).limit(limit)
    if kind:
        query = query.where(Anomaly.kind == kind)
    if terminal_id:
        query = query.where(Anomaly.terminal_id == terminal_id)
    if card_pseudonym:
        query = query.where(Anomaly.card_pseudonym == card_pseudonym)
    if open_only or state == "open":
        query = query.where(Anomaly.resolved_at.is_(None))
    elif state == "resolved":
        query = query.where(Anomaly.resolved_at.is_not(None))
    return [anomaly_json(a) for a in session.scalars(query)]


def resolve_anomaly(session: Session, anomaly_id: int, reason: str, *, by: str) -> dict[str, Any]:
    """A person explains an anomaly: it is resolved with their reason (never deleted).

    Raises:
        NotFound: no such anomaly.
        Conflict: already resolved.
    """
    anomaly = session.get(Anomaly, anomaly_id)
    if anomaly is None:
        raise NotFound(f"anomalie {anomaly_id} inconnue", f"unknown anomaly {anomaly_id}")
    if anomaly.resolved_at is not None:
        raise Conflict(
            f"anomalie {anomaly_id} déjà résolue", f"anomaly {anomaly_id} already resolved"
        )
    anomaly.resolved_at = utcnow()
    anomaly.resolution = f"{reason.strip()} ({by})"
    session.flush()
    return anomaly_json(anomaly)


def merchant_report(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Per merchant terminal: aid spent per purpose in ``[start, end)``."""
    merchants: dict[str, dict[str, int]] = {}
    for account, amount in _period_balances(session, start, end).items():
        kind, terminal_id, what = _split(account)
        if kind != "merchant" or amount == 0:
            continue
        purpose = what.removeprefix("aid.")
        merchants.setdefault(terminal_id, {})[purpose] = amount
    return {"merchants": merchants}
