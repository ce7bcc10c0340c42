"""Meal prices and service hours of a school canteen, and their JSON file.

A canteen's tariff says when each service runs and what a meal costs, by service and boarding
status (externe, demi-pensionnaire, interne), with optional prices for some class levels only (a
collège class in a cité scolaire pays the department's price). The till loads it from a local
JSON file (``terminal/canteen/data/tariff.json`` by default); the format is in
``docs/canteen.md``. Pure except :func:`load_tariff`, which reads the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from card_schema.errors import RegionCardError
from card_schema.records.cursus import LEVELS
from terminal.canteen.model import Boarding, Funder, MealService

DEFAULT_TARIFF_PATH = Path(__file__).resolve().parent / "data" / "tariff.json"
TARIFF_FORMAT = "regioncard.canteen-tariff/1"
MAX_MEAL_PRICE = 0xFFFF  # the canteen log stores each part on 16 bits: 655,35 € at most


class CanteenConfigError(RegionCardError):
    """A tariff or menu file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ServiceWindow:
    """Opening hours of one meal service, local time, start inclusive, end exclusive."""

    service: MealService
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise CanteenConfigError(f"{self.service}: the service ends before it starts")

    def contains(self, moment: time) -> bool:
        """Whether the local wall-clock time ``moment`` falls in the window."""
        return self.start <= moment.replace(second=0, microsecond=0) < self.end


@dataclass(frozen=True)
class MealPrice:
    """Price of one meal, in eurocents.

    Attributes:
        service: the meal service.
        boarding: the pupils' boarding status it applies to.
        amount: eurocents (0 for a free meal).
        levels: class levels it is reserved to; empty for every level.
    """

    service: MealService
    boarding: Boarding
    amount: int
    levels: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 0 <= self.amount <= MAX_MEAL_PRICE:
            raise CanteenConfigError(f"meal price {self.amount} outside 0..{MAX_MEAL_PRICE}")
        unknown = self.levels - set(LEVELS.values())
        if unknown:
            raise CanteenConfigError(f"unknown class levels {sorted(unknown)}")


@dataclass(frozen=True)
class CanteenTariff:
    """Service hours and prices of one canteen.

    Attributes:
        version: the tariff's version label (printed on the daily report).
        services: the service windows; they must not overlap.
        prices: the price entries; a level-specific entry wins over the general one.
        aid_funder: who funds the canteen aid counter (written in the canteen log).
    """

    version: str
    services: tuple[ServiceWindow, ...]
    prices: tuple[MealPrice, ...]
    aid_funder: Funder = Funder.REGION

    def __post_init__(self) -> None:
        ordered = sorted(self.services, key=lambda w: w.start)
        for first, second in pairwise(ordered):
            if second.start < first.end:
                raise CanteenConfigError(f"services {first.service} and {second.service} overlap")
        seen: set[tuple[MealService, Boarding, frozenset[str]]] = set()
        for price in self.prices:
            key = (price.service, price.boarding, price.levels)
            if key in seen:
                raise CanteenConfigError(f"two prices for {price.service} {price.boarding}")
            seen.add(key)

    def service_at(self, moment: time) -> MealService | None:
        """The service open at local time ``moment``, or ``None`` between services."""
        for window in self.services:
            if window.contains(moment):
                return window.service
        return None

    def price(self, service: MealService, boarding: Boarding, level: str) -> int | None:
        """What a meal of ``service`` costs this pupil; ``None`` if the tariff has no such meal."""
        general: int | None = None
        for entry in self.prices:
            if entry.service is not service or entry.boarding is not boarding:
                continue
            if level in entry.levels:
                return entry.amount
            if not entry.levels:
                general = entry.amount
        return general


def _time(text: Any, where: str) -> time:
    try:
        return time.fromisoformat(text)
    except (TypeError, ValueError):
        raise CanteenConfigError(f"{where}: expected a time like 11:00, got {text!r}") from None


def tariff_from_json(obj: Any) -> CanteenTariff:
    """Build a tariff from its JSON object (``docs/canteen.md``, tariff file).

    Raises:
        CanteenConfigError: wrong format, unknown names, overlapping services, bad prices.
    """
    try:
        if obj["format"] != TARIFF_FORMAT:
            raise CanteenConfigError(f"not a {TARIFF_FORMAT} file")
        services = tuple(
            ServiceWindow(
                MealService(name),
                _time(hours["start"], f"services.{name}.start"),
                _time(hours["end"], f"services.{name}.end"),
            )
            for name, hours in obj["services"].items()
        )
        prices = tuple(
            MealPrice(
                service=MealService(entry["service"]),
                boarding=Boarding(entry["boarding"]),
                amount=_amount(entry["amount"]),
                levels=frozenset(entry.get("levels", ())),
            )
            for entry in obj["prices"]
        )
        return CanteenTariff(
            version=str(obj["version"]),
            services=services,
            prices=prices,
            aid_funder=Funder(obj.get("aid_funder", Funder.REGION.value)),
        )
    except CanteenConfigError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CanteenConfigError(f"bad canteen tariff: {exc!r}") from exc


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CanteenConfigError(f"prices are integer eurocents, got {value!r}")
    return value


def load_tariff(path: Path = DEFAULT_TARIFF_PATH) -> CanteenTariff:
    """Read a tariff file.

    Raises:
        CanteenConfigError: unreadable or invalid file.
    """
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CanteenConfigError(f"cannot read canteen tariff {path}: {exc}") from exc
    return tariff_from_json(obj)


def simple_tariff(
    prices: Iterable[tuple[MealService, Boarding, int]],
    services: Sequence[ServiceWindow] | None = None,
    *,
    version: str = "test",
) -> CanteenTariff:
    """A tariff from ``(service, boarding, amount)`` triples and the default hours (tests, demo)."""
    return CanteenTariff(
        version=version,
        services=tuple(services) if services is not None else DEFAULT_SERVICES,
        prices=tuple(MealPrice(s, b, amount) for s, b, amount in prices),
    )


DEFAULT_SERVICES: tuple[ServiceWindow, ...] = (
    ServiceWindow(MealService.BREAKFAST, time(6, 45), time(8, 15)),
    ServiceWindow(MealService.LUNCH, time(11, 0), time(14, 0)),
    ServiceWindow(MealService.SNACK, time(16, 0), time(17, 30)),
    ServiceWindow(MealService.DINNER, time(18, 30), time(20, 15)),
)
