"""Tests of terminal.fares.tariff: the default table, validity periods, reductions, bad tables."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fares_builders import TARIFF

from terminal.fares.errors import TariffError
from terminal.fares.local_time import add_months, day_before_anniversary
from terminal.fares.model import Mode, ProfileCode, zones_from_bitmap
from terminal.fares.tariff import ProductKind, load_tariff, parse_tariff


def raw_default() -> dict[str, Any]:
    return json.loads(TARIFF.model_dump_json())


def test_default_table_shape() -> None:
    assert TARIFF.version >= 1
    assert TARIFF.anti_passback_seconds == 450
    assert {m.fare_media_type for m in TARIFF.fare_media} == {2}
    payg = TARIFF.product("TICKET_UNITAIRE")
    assert payg is not None and payg.amount == 180 and payg.kind is ProductKind.PAY_AS_YOU_GO
    carnet = TARIFF.product("CARNET_10")
    assert carnet is not None and carnet.trips == 10
    ter = TARIFF.product("PLUM_TER_MOIS")
    assert ter is not None and ter.modes == {Mode.TER, Mode.COACH}
    assert TARIFF.product("TRANSPORT_SCOLAIRE") is not None
    assert TARIFF.product("nope") is None and TARIFF.product(None) is None
    assert TARIFF.product_by_card_code(2) == carnet
    assert {r.duration_limit for r in TARIFF.transfer_rules} == {3600}


def test_dump_and_parse_round_trip() -> None:
    assert parse_tariff(raw_default()) == TARIFF


@pytest.mark.parametrize(
    ("product_id", "start", "end"),
    [
        ("PASS_MOIS_1Z", date(2025, 2, 1), date(2025, 2, 28)),
        ("PASS_MOIS_1Z", date(2024, 2, 1), date(2024, 2, 29)),
        ("PASS_MOIS_1Z", date(2024, 2, 29), date(2024, 2, 29)),
        ("PASS_MOIS_1Z", date(2025, 12, 1), date(2025, 12, 31)),
        ("PLUM_TER_MOIS", date(2025, 1, 15), date(2025, 2, 14)),
        ("PLUM_TER_MOIS", date(2025, 1, 31), date(2025, 2, 28)),
        ("PLUM_TER_MOIS", date(2024, 1, 31), date(2024, 2, 29)),
        ("PLUM_TER_MOIS", date(2025, 12, 20), date(2026, 1, 19)),
        ("PASS_ANNUEL_1Z", date(2024, 2, 29), date(2025, 2, 28)),
        ("PASS_ANNUEL_1Z", date(2023, 3, 1), date(2024, 2, 29)),
        ("PASS_ANNUEL_1Z", date(2025, 1, 1), date(2025, 12, 31)),
        ("CARNET_10", date(2025, 1, 1), None),
    ],
    ids=lambda v: str(v),
)
def test_end_date(product_id: str, start: date, end: date | None) -> None:
    product = TARIFF.product(product_id)
    assert product is not None
    assert product.end_date(start) == end


@pytest.mark.parametrize(
    ("day", "months", "moved", "last"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28), date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29), date(2024, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28), date(2025, 2, 28)),
        (date(2025, 11, 30), 3, date(2026, 2, 28), date(2026, 2, 28)),
        (date(2025, 3, 15), -3, date(2024, 12, 15), date(2024, 12, 14)),
    ],
    ids=["31jan", "31jan-leap", "leap-day-year", "across-year", "backwards"],
)
def test_month_arithmetic(day: date, months: int, moved: date, last: date) -> None:
    assert add_months(day, months) == moved
    assert day_before_anniversary(day, months) == last


@pytest.mark.parametrize(
    ("profiles", "amount", "expected"),
    [
        (frozenset(), 180, 180),
        (frozenset({ProfileCode.STUDENT}), 180, 126),
        (frozenset({ProfileCode.JOB_SEEKER}), 180, 90),
        (frozenset({ProfileCode.SENIOR}), 175, 123),  # 122.5 rounds half up
        (frozenset({ProfileCode.STUDENT, ProfileCode.JOB_SEEKER}), 180, 90),
        (frozenset({ProfileCode.JOB_SEEKER}), 1, 1),  # 0.5 rounds up
        (frozenset({ProfileCode.JOB_SEEKER}), 0, 0),
    ],
    ids=["none", "student", "job-seeker", "senior-rounding", "best-wins", "half-cent", "free"],
)
def test_reduced_amount(profiles: frozenset[ProfileCode], amount: int, expected: int) -> None:
    assert TARIFF.reduced_amount(amount, profiles) == expected


def test_zones_from_bitmap() -> None:
    assert zones_from_bitmap(0b1011) == {1, 2, 4}
    assert zones_from_bitmap(0) == frozenset()


def _broken(mutate: str) -> dict[str, Any]:
    data = copy.deepcopy(raw_default())
    if mutate == "unknown-product-in-leg-rule":
        data["leg_rules"][0]["fare_product_id"] = "GHOST"
    elif mutate == "duplicate-product":
        data["fare_products"].append(data["fare_products"][0])
    elif mutate == "reduction-over-100":
        data["reduced_fare_percent"]["student"] = 120
    elif mutate == "media-not-a-card":
        data["fare_media"][0]["fare_media_type"] = 3
    elif mutate == "carnet-without-trips":
        next(p for p in data["fare_products"] if p["kind"] == "carnet")["trips"] = None
    elif mutate == "unknown-leg-group":
        data["transfer_rules"][0]["to_leg_group_id"] = "tramway"
    elif mutate == "paid-transfer":
        data["transfer_rules"][0]["fare_transfer_type"] = 1
    elif mutate == "school-product-missing":
        data["school_transport_product_id"] = "TICKET_UNITAIRE"
    elif mutate == "other-timezone":
        data["timezone"] = "UTC"
    elif mutate == "unknown-field":
        data["open_all_gates"] = True
    elif mutate == "version-zero":
        data["version"] = 0
    elif mutate == "unknown-rider":
        data["fare_products"][0]["rider_category_id"] = "vip"
    return data


@pytest.mark.parametrize(
    "mutate",
    [
        "unknown-product-in-leg-rule",
        "duplicate-product",
        "reduction-over-100",
        "media-not-a-card",
        "carnet-without-trips",
        "unknown-leg-group",
        "paid-transfer",
        "school-product-missing",
        "other-timezone",
        "unknown-field",
        "version-zero",
        "unknown-rider",
    ],
)
def test_bad_table_is_refused(mutate: str) -> None:
    with pytest.raises(TariffError):
        parse_tariff(_broken(mutate))


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "tariff.json"
    path.write_text(TARIFF.model_dump_json(), encoding="utf-8")
    assert load_tariff(path) == TARIFF


@pytest.mark.parametrize("content", [None, "{not json", "[]"], ids=["missing", "bad-json", "list"])
def test_load_errors(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "tariff.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TariffError):
        load_tariff(path)
