"""Pending card actions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.auth.roles import Application
from backend.columns import UTCDateTime, str_enum, utcnow
from backend.db import Base


class ActionKind(StrEnum):
    """What a pending action writes on the card."""

    LOAD_CONTRACT = "load_contract"  # a transit contract (season ticket, trip pack)
    SV_RELOAD = "sv_reload"  # stored value credited
    AID_CREDIT = "aid_credit"  # ring-fenced school aid credited
    SCHOOL_TRANSPORT = "school_transport"  # free school transport right in Cursus
    RIGHT_GRANT = "right_grant"  # employment right written
    MOVE_BALANCE = "move_balance"  # balance carried over from a replaced card


class ActionStatus(StrEnum):
    """Life cycle of an action."""

    PENDING = "pending"
    CONFIRMED = "confirmed"  # a terminal wrote it; the card counter proves it happened once
    CANCELLED = "cancelled"


class CardAction(Base):
    """A write waiting for its card.

    Attributes:
        card_serial: target card (upper-case hex).
        application: application written to (decides which terminals receive it).
        params: canonical JSON of what to write (product code, amount, validity...).
        confirmed_card_tx_counter: card transaction counter of the session that wrote it.
    """

    __tablename__ = "card_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_serial: Mapped[str] = mapped_column(String(32), index=True)
    application: Mapped[Application] = mapped_column(str_enum(Application))
    kind: Mapped[ActionKind] = mapped_column(str_enum(ActionKind))
    params: Mapped[str] = mapped_column(Text)
    status: Mapped[ActionStatus] = mapped_column(
        str_enum(ActionStatus), default=ActionStatus.PENDING, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_card_tx_counter: Mapped[int | None]
