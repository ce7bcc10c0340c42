"""The only link from tap pseudonyms back to card serials, kept at most 48 hours."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base


class CardLink(Base):
    """Pseudonym -> card serial, for fraud control only; purged after 48 hours (CNIL).

    No holder, profile, employment or social attribute here or in any tap table.
    """

    __tablename__ = "card_links"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_serial: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
