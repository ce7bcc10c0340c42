"""Published tariff table versions, each stored with the signature terminals verify."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base


class TariffVersion(Base):
    """One published tariff table.

    ``payload`` is the canonical JSON that was signed (its ``version`` key equals :attr:`version`),
    so the envelope served later is the one the HSM signed. A table older than the re-signing
    period is signed again on read with a fresh ``issued_at`` (same version, same payload), so a
    terminal installed late never receives an envelope past its 90-day limit.
    """

    __tablename__ = "tariff_versions"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    valid_from: Mapped[str] = mapped_column(String(10))
    payload: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    published_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
