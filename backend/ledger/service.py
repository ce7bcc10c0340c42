"""Ledger queries and corrections. Lines are only ever inserted: no update, no delete.

:func:`check_balanced` is the invariant the tests, the reconciliation reports and the demo
rely on: every entry sums to zero, hence the whole ledger does, to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from backend.columns import utcnow
from backend.ledger.models import LedgerEntry
from card_schema.errors import RegionCardError


class LedgerError(RegionCardError):
    """A posting or a correction cannot be made as asked."""


class LedgerImbalance(LedgerError):
    """Some entries do not sum to zero (a bug or a tampered table: never expected)."""


@dataclass(frozen=True)
class LedgerCheck:
    """Result of :func:`check_balanced`.

    Attributes:
        entries: number of entries checked.
        lines: number of lines.
        total: sum of all lines (0).
    """

    entries: int
    lines: int
    total: int


def post_entry(
    session: Session,
    entry_ref: str,
    lines: Sequence[tuple[str, int]],
    *,
    occurred_at: datetime,
    kind: str,
    reverses: str | None = None,
) -> None:
    """Insert one entry.

    Raises:
        LedgerError: the lines do not sum to zero, or the entry already exists.
    """
    if sum(amount for _, amount in lines) != 0:
        raise LedgerError(f"entry {entry_ref} does not balance")
    if session.scalar(select(LedgerEntry.id).where(LedgerEntry.entry_ref == entry_ref).limit(1)):
        raise LedgerError(f"entry {entry_ref} already posted")
    now = utcnow()
    rows = [
        {
            "entry_ref": entry_ref,
            "line": index,
            "account": account,
            "amount": amount,
            "occurred_at": occurred_at,
            "kind": kind,
            "reverses": reverses,
            "posted_at": now,
        }
        for index, (account, amount) in enumerate(lines)
    ]
    if rows:
        session.execute(insert(LedgerEntry), rows)


def entry_lines(session: Session, entry_ref: str) -> list[tuple[str, int]]:
    """The lines of one entry, in order."""
    rows = session.execute(
        select(LedgerEntry.account, LedgerEntry.amount)
        .where(LedgerEntry.entry_ref == entry_ref)
        .order_by(LedgerEntry.line)
    )
    return [(account, amount) for account, amount in rows]


def reverse_entry(session: Session, entry_ref: str, *, reason: str) -> str:
    """Correct an entry by posting its exact opposite, referencing it; returns the new ref.

    Raises:
        LedgerError: no such entry, or it was already reversed.
    """
    lines = entry_lines(session, entry_ref)
    if not lines:
        raise LedgerError(f"no ledger entry {entry_ref}")
    if session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses == entry_ref).limit(1)):
        raise LedgerError(f"entry {entry_ref} was already reversed")
    occurred_at = session.scalar(
        select(LedgerEntry.occurred_at).where(LedgerEntry.entry_ref == entry_ref).limit(1)
    )
    assert occurred_at is not None
    ref = f"fix:{entry_ref}:{reason}"[:120]
    post_entry(
        session,
        ref,
        [(account, -amount) for account, amount in lines],
        occurred_at=occurred_at,
        kind="correction",
        reverses=entry_ref,
    )
    return ref


def account_balance(session: Session, account: str) -> int:
    """Sum of an account's lines."""
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account == account)
    )
    return int(total or 0)


def balances(session: Session, prefix: str = "") -> dict[str, int]:
    """Balances of every account whose name starts with ``prefix``."""
    query = select(LedgerEntry.account, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.account)
    if prefix:
        query = query.where(LedgerEntry.account.startswith(prefix, autoescape=True))
    return {account: int(total) for account, total in session.execute(query)}


def check_balanced(session: Session) -> LedgerCheck:
    """Check that every entry sums to zero.

    Raises:
        LedgerImbalance: naming up to ten entries that do not.
    """
    unbalanced = session.execute(
        select(LedgerEntry.entry_ref, func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.entry_ref)
        .having(func.sum(LedgerEntry.amount) != 0)
        .limit(10)
    ).all()
    if unbalanced:
        listed = ", ".join(f"{ref} ({int(total):+d})" for ref, total in unbalanced)
        raise LedgerImbalance(f"ledger entries do not balance: {listed}")
    entries, lines, total = session.execute(
        select(
            func.count(func.distinct(LedgerEntry.entry_ref)),
            func.count(LedgerEntry.id),
            func.coalesce(func.sum(LedgerEntry.amount), 0),
        )
    ).one()
    if total != 0:
        raise LedgerImbalance(f"the ledger sums to {total}, not 0")
    return LedgerCheck(entries=int(entries), lines=int(lines), total=int(total))
