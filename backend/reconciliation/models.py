"""Clearing periods and the settlements a period close produced."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base

BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class ClearingPeriod(Base):
    """A closed period ``[starts_at, ends_at)``; periods never overlap.

    Attributes:
        period_id: name, e.g. ``2025-09``.
        pass_pool: PLUM season-pass revenue of the period shared among operators (eurocents).
    """

    __tablename__ = "clearing_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[str] = mapped_column(String(32), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pass_pool: Mapped[int] = mapped_column(BigInteger, default=0)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Settlement(Base):
    """One amount a payer owes a payee for a period (also posted to the ledger).

    Attributes:
        payer: ``funder:region:<purpose>``, ``region:plum`` or ``region:wallet``.
        payee: ``operator:<id>``, ``school:<uai>``, ``merchant:<terminal>``, ``terminal:<id>``.
        account: the ledger account settled.
        amount: eurocents (may be negative: a refund owed back).
    """

    __tablename__ = "settlements"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    period_id: Mapped[str] = mapped_column(String(32), index=True)
    payer: Mapped[str] = mapped_column(String(120))
    payee: Mapped[str] = mapped_column(String(120))
    account: Mapped[str] = mapped_column(String(120))
    amount: Mapped[int] = mapped_column(BigInteger)
