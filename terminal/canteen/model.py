"""The canteen's view of the card: student record, aid counters, canteen log, wallet debit log.

Plain values read from (and written to) the 29-byte records of ``docs/card-layout.md`` through the
EN 1545 layouts of :mod:`card_schema.records`. Pure: no IO, no clock.

Card dates and times are Europe/Paris wall-clock values (EN 1545), so the ``datetime`` values here
are naive and read as Paris time (:mod:`terminal.fares.local_time`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from card_schema.errors import SchemaError
from card_schema.layout import RECORD_SIZE
from card_schema.records import decode_record, encode_record
from terminal.engine.svlog import WalletDebit as WalletDebit  # moved: shared with the gate
from terminal.engine.svlog import non_blank as non_blank

BLANK_RECORD = bytes(RECORD_SIZE)
# Counter numbers in the Cursus aid counter file (cursus.aid_counters, 1-based as in Decrease P1).
CANTEEN_AID_COUNTER = 3
BOOKS_AID_COUNTER = 1
SPORT_AID_COUNTER = 2


class MealService(StrEnum):
    """Meal services, named as in the ``cursus.canteen_log`` ``service`` enum."""

    BREAKFAST = "breakfast"
    LUNCH = "lunch"
    SNACK = "snack"
    DINNER = "dinner"

    @property
    def label(self) -> str:
        """French name shown to the cashier and the canteen manager."""
        return SERVICE_LABELS[self]


SERVICE_LABELS: dict[MealService, str] = {
    MealService.BREAKFAST: "petit-déjeuner",
    MealService.LUNCH: "déjeuner",
    MealService.SNACK: "goûter",
    MealService.DINNER: "dîner",
}


class Boarding(StrEnum):
    """Boarding status of the pupil (``cursus.student`` ``boarding``)."""

    DAY_PUPIL = "day_pupil"  # externe: pays each meal at the ticket price
    HALF_BOARD = "half_board"  # demi-pensionnaire: lunch at the half-board tariff
    BOARDER = "boarder"  # interne: every service at the boarding tariff


class Funder(StrEnum):
    """Funder of the aid part of a meal (``cursus.canteen_log`` ``funder``)."""

    NONE = "none"
    REGION = "region"
    DEPARTMENT = "department"
    COMMUNE = "commune"
    SCHOOL_SOCIAL_FUND = "school_social_fund"

    @property
    def label(self) -> str:
        """French label for the manager's report."""
        return FUNDER_LABELS[self]


FUNDER_LABELS: dict[Funder, str] = {
    Funder.NONE: "aucun",
    Funder.REGION: "Région (aide cantine)",
    Funder.DEPARTMENT: "Département",
    Funder.COMMUNE: "Commune",
    Funder.SCHOOL_SOCIAL_FUND: "Fonds social lycéen",
}


def _uai(value: Any) -> str | None:
    # A record never written holds {"raw": 0}: no school.
    return value if isinstance(value, str) else None


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Student:
    """What the canteen reads of ``cursus.student``.

    Attributes:
        school_uai: the pupil's school, ``None`` when the record holds none.
        level: class level name (``"seconde"``...).
        boarding: boarding status.
        valid_from: first day of the school year (inclusive), ``None`` if unset.
        valid_until: last day of the school year (inclusive), ``None`` if unset.
    """

    school_uai: str | None
    level: str
    boarding: Boarding
    valid_from: date | None
    valid_until: date | None

    @classmethod
    def from_record(cls, raw: bytes) -> Student:
        """Decode a ``cursus.student`` record.

        Raises:
            SchemaError: not a student record (wrong length, unknown enum value).
        """
        fields = decode_record("cursus.student", raw)
        boarding = fields["boarding"]
        level = fields["level"]
        if not isinstance(boarding, str) or not isinstance(level, str):
            raise SchemaError("student record with an unknown level or boarding code")
        return cls(
            school_uai=_uai(fields["school_uai"]),
            level=level,
            boarding=Boarding(boarding),
            valid_from=_date(fields["valid_from"]),
            valid_until=_date(fields["valid_until"]),
        )


@dataclass(frozen=True)
class AidCounters:
    """The ring-fenced aid counters of Cursus, in eurocents.

    Only :attr:`canteen` may pay a meal; the other two are here so that the rules can be shown,
    and tested, never to touch them.
    """

    books_equipment: int
    sport_leisure: int
    canteen: int

    @classmethod
    def from_record(cls, raw: bytes) -> AidCounters:
        """Decode a ``cursus.aid_counters`` record."""
        fields = decode_record("cursus.aid_counters", raw)
        return cls(
            books_equipment=int(fields["books_equipment"]),
            sport_leisure=int(fields["sport_leisure"]),
            canteen=int(fields["canteen"]),
        )


@dataclass(frozen=True)
class CanteenLogEntry:
    """One ``cursus.canteen_log`` record: a meal served.

    Attributes:
        served_at: local date and time of the meal, to the minute.
        school_uai: school of the canteen.
        service: meal service.
        funder: funder of the aid part (``NONE`` when the aid paid nothing).
        aid_amount: eurocents taken from the canteen aid counter.
        wallet_amount: eurocents taken from the wallet (paid in a second session).
        terminal_id: point-of-sale number of the till (16 bits).
    """

    served_at: datetime
    school_uai: str
    service: MealService
    funder: Funder
    aid_amount: int
    wallet_amount: int
    terminal_id: int

    @property
    def price(self) -> int:
        """What the meal cost, all sources together (eurocents)."""
        return self.aid_amount + self.wallet_amount

    def to_record(self) -> bytes:
        """The 29 bytes Append Record writes.

        Raises:
            SchemaError: a value does not fit its field (amount above 655,35 €, terminal id
                above 65535...).
        """
        return encode_record(
            "cursus.canteen_log",
            {
                "served_at": self.served_at.strftime("%Y-%m-%dT%H:%M"),
                "school_uai": self.school_uai,
                "service": self.service.value,
                "funder": self.funder.value,
                "aid_amount": self.aid_amount,
                "wallet_amount": self.wallet_amount,
                "terminal_id": self.terminal_id,
            },
        )

    @classmethod
    def from_record(cls, raw: bytes) -> CanteenLogEntry | None:
        """Decode a canteen log record; ``None`` for a blank or unreadable one.

        A record this version cannot read (an unknown service code written by a newer till)
        is not a meal it can reason about; it is skipped, never rewritten.
        """
        if raw == BLANK_RECORD:
            return None
        try:
            fields = decode_record("cursus.canteen_log", raw)
            served_at = _datetime(fields["served_at"])
            school = _uai(fields["school_uai"])
            service = MealService(fields["service"])
            funder = Funder(fields["funder"])
        except (SchemaError, ValueError, TypeError):
            return None
        if served_at is None or school is None:
            return None
        return cls(
            served_at=served_at,
            school_uai=school,
            service=service,
            funder=funder,
            aid_amount=int(fields["aid_amount"]),
            wallet_amount=int(fields["wallet_amount"]),
            terminal_id=int(fields["terminal_id"]),
        )
