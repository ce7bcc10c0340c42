"""Builders shared by the canteen tests: a pupil, a tariff, card records, clock values."""

from __future__ import annotations

from datetime import date, datetime

from card_schema.records import encode_record
from terminal.canteen.model import (
    AidCounters,
    Boarding,
    CanteenLogEntry,
    Funder,
    MealService,
    Student,
)
from terminal.canteen.tariff import CanteenTariff, simple_tariff
from terminal.fares.local_time import PARIS

SCHOOL = "0801234G"
OTHER_SCHOOL = "0590001A"
POS = 7
LUNCH_PRICE = 380
YEAR_START, YEAR_END = date(2026, 9, 1), date(2027, 7, 4)
# Friday 27 November 2026, 12:05 in Amiens.
LUNCH_TIME = datetime(2026, 11, 27, 12, 5, tzinfo=PARIS)
DINNER_TIME = datetime(2026, 11, 27, 19, 10, tzinfo=PARIS)


def tariff() -> CanteenTariff:
    return simple_tariff(
        [
            (MealService.LUNCH, Boarding.HALF_BOARD, LUNCH_PRICE),
            (MealService.LUNCH, Boarding.BOARDER, LUNCH_PRICE),
            (MealService.DINNER, Boarding.BOARDER, 380),
            (MealService.BREAKFAST, Boarding.BOARDER, 160),
        ]
    )


def student(
    school: str = SCHOOL,
    boarding: Boarding = Boarding.HALF_BOARD,
    valid_from: date | None = YEAR_START,
    valid_until: date | None = YEAR_END,
    level: str = "seconde",
) -> Student:
    return Student(school, level, boarding, valid_from, valid_until)


def aid(canteen: int, books: int = 0, sport: int = 0) -> AidCounters:
    return AidCounters(books_equipment=books, sport_leisure=sport, canteen=canteen)


def meal(
    at: datetime,
    service: MealService = MealService.LUNCH,
    school: str = SCHOOL,
    aid_amount: int = LUNCH_PRICE,
    wallet_amount: int = 0,
) -> CanteenLogEntry:
    return CanteenLogEntry(
        served_at=at.replace(tzinfo=None, second=0, microsecond=0),
        school_uai=school,
        service=service,
        funder=Funder.REGION if aid_amount else Funder.NONE,
        aid_amount=aid_amount,
        wallet_amount=wallet_amount,
        terminal_id=POS,
    )


def student_record(
    school: str = SCHOOL,
    boarding: str = "half_board",
    valid_from: date = YEAR_START,
    valid_until: date = YEAR_END,
    level: str = "seconde",
) -> bytes:
    return encode_record(
        "cursus.student",
        {
            "version": 1,
            "school_uai": school,
            "level": level,
            "boarding": boarding,
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat(),
            "school_transport": "free",
            "transport_network_id": 250000,
            "transport_zones": [1, 2],
        },
    )


def aid_record(canteen: int, books: int = 0, sport: int = 0) -> bytes:
    values: dict[str, int] = {"books_equipment": books, "sport_leisure": sport, "canteen": canteen}
    values.update({f"counter_{i}": 0 for i in range(4, 9)})
    values["last_action"] = 0
    return encode_record("cursus.aid_counters", values)
