"""Cards and the applications they carry."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.auth.roles import Application
from backend.columns import UTCDateTime, str_enum, utcnow
from backend.db import Base


class CardStatus(StrEnum):
    """Life cycle of a card."""

    ISSUING = "issuing"  # registered by a desk job, not fully written yet: not usable
    ACTIVE = "active"
    BLOCKED = "blocked"  # lost or stolen: on the deny-list
    REPLACED = "replaced"  # blocked, and its balances and contracts moved to a new card


class Card(Base):
    """One physical card.

    Attributes:
        serial: card serial number, upper-case hex (as in batches and deny-lists).
        holder_id: its holder (an anonymous holder for an anonymous card).
        balances: last known purse balances, canonical JSON ``{"wallet.sv": 1250, ...}`` (purse
            names as in upload movements; moved to the replacement card when it is blocked).
        last_tx_counter: last card transaction counter seen.
        balances_at: when the card session that gave the last known balances happened.
        replaced_by_id: the card that replaced it.
    """

    __tablename__ = "cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    status: Mapped[CardStatus] = mapped_column(str_enum(CardStatus), default=CardStatus.ACTIVE)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blocked_reason: Mapped[str | None] = mapped_column(String(200))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    balances: Mapped[str] = mapped_column(Text, default="{}")
    last_tx_counter: Mapped[int | None]
    balances_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    applications: Mapped[list[CardApplication]] = relationship(
        back_populates="card", order_by="CardApplication.application"
    )


class CardApplication(Base):
    """An application a card carries (``removed_at`` set once removed at the desk)."""

    __tablename__ = "card_applications"
    __table_args__ = (UniqueConstraint("card_id", "application"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    application: Mapped[Application] = mapped_column(str_enum(Application))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    card: Mapped[Card] = relationship(back_populates="applications")
