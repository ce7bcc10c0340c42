"""Ledger lines. An entry is the set of lines sharing ``entry_ref``; its amounts sum to zero."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base

BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class LedgerEntry(Base):
    """One line of a double-entry posting, in eurocents.

    Attributes:
        entry_ref: the entry (transaction) the line belongs to: ``tap:<terminal>:<seq>``,
            ``rec:<pseudonym>:<counter>``, ``fix:...``, ``clr:<period>:...``.
        line: position in the entry.
        account: account name (:mod:`backend.ledger.accounts`).
        amount: signed eurocents; the lines of one entry sum to zero.
        occurred_at: business time (tap time; period end for clearing entries).
        kind: ``tap``, ``recovered``, ``correction``, ``pass_share``, ``clearing``.
        reverses: for a correction, the entry it corrects (never deleted nor updated).
    """

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    entry_ref: Mapped[str] = mapped_column(String(120), index=True)
    line: Mapped[int] = mapped_column(SmallInteger)
    account: Mapped[str] = mapped_column(String(120), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    reverses: Mapped[str | None] = mapped_column(String(120))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
