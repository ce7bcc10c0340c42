"""Deny-list entries and the signed versions published to terminals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base


class DenyListEntry(Base):
    """A serial on the deny-list from ``added_version`` until ``removed_version`` (exclusive)."""

    __tablename__ = "deny_list_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_serial: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    added_version: Mapped[int]
    removed_version: Mapped[int | None]
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DenyListVersion(Base):
    """One published version: its full list and its delta from the previous one, both signed.

    The payloads are stored as the exact JSON that was signed, so an envelope served later is
    byte-for-byte the one the HSM signed.
    """

    __tablename__ = "deny_list_versions"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    full_payload: Mapped[str] = mapped_column(Text)
    full_signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    delta_payload: Mapped[str] = mapped_column(Text)
    delta_signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
