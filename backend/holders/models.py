"""Card holders."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base


class Holder(Base):
    """A person holding cards, or an anonymous holder (every personal field empty).

    Customer data are kept for the contract duration plus 2 years (CNIL practice); an anonymous
    card is always available.
    """

    __tablename__ = "holders"

    id: Mapped[int] = mapped_column(primary_key=True)
    anonymous: Mapped[bool] = mapped_column(default=False)
    family_name: Mapped[str | None] = mapped_column(String(100))
    given_name: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None]
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    postal_address: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
