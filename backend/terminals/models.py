"""Registered devices and their public keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.auth.roles import TerminalKind
from backend.columns import UTCDateTime, str_enum, utcnow
from backend.db import Base


class Terminal(Base):
    """A device allowed to talk to the backend.

    Attributes:
        terminal_id: the device's name in batches (``X-Regioncard-Terminal``), 1-64 characters.
        kind: gate, canteen, bike_shelter, inspector or desk; decides what it may do.
        station_id: station, stop or door (gates, bike shelters, inspectors' home station).
        school_uai: school UAI (canteen tills).
        sam_serial: hex serial of the SAM in the device (4 bytes); traceable signatures name it.
        credential_hash: SHA-256 of its bearer credential.
        active: a decommissioned device is kept (history) but refused.
    """

    __tablename__ = "terminals"

    terminal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[TerminalKind] = mapped_column(str_enum(TerminalKind))
    label: Mapped[str] = mapped_column(String(200), default="")
    station_id: Mapped[int | None]
    school_uai: Mapped[str | None] = mapped_column(String(8))
    sam_serial: Mapped[str | None] = mapped_column(String(16), unique=True)
    credential_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    keys: Mapped[list[TerminalKey]] = relationship(
        back_populates="terminal", order_by="TerminalKey.id"
    )


class TerminalKey(Base):
    """One Ed25519 public key of a terminal (several during a key rotation).

    ``key_id`` is the first 8 bytes of SHA-256 of the raw 32-byte public key, hex (lower case), as
    in the batch signature (docs/batch-format.md).
    """

    __tablename__ = "terminal_keys"
    __table_args__ = (UniqueConstraint("terminal_id", "key_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    terminal: Mapped[Terminal] = relationship(back_populates="keys")
