"""School aid and employment rights granted to holders."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, str_enum, utcnow
from backend.db import Base


class AidPurpose(StrEnum):
    """Ring-fenced aid purses of the Cursus application: one funder's money pays one purpose."""

    BOOKS = "books"
    SPORT = "sport"
    CANTEEN = "canteen"


class SchoolAid(Base):
    """Aid granted to a young holder for one school year, one purpose, by one funder."""

    __tablename__ = "school_aids"
    __table_args__ = (UniqueConstraint("holder_id", "school_year", "purpose", "funder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    school_year: Mapped[str] = mapped_column(String(9))  # "2025-2026"
    purpose: Mapped[AidPurpose] = mapped_column(str_enum(AidPurpose))
    funder: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int]
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    granted_by: Mapped[str] = mapped_column(String(64))


class EmploymentRight(Base):
    """A right granted by an employment partner (mobility aid, training hours...).

    Stored with the holder, never with taps: employment attributes never enter the tap log.
    """

    __tablename__ = "employment_rights"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    partner: Mapped[str] = mapped_column(String(64))
    right_code: Mapped[int]
    valid_from: Mapped[date]
    valid_to: Mapped[date]
    amount_cents: Mapped[int | None]
    hours: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="granted")
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
