"""The tariff table: products, prices and rules, shaped like GTFS-Fares v2.

The backend signs the table and pushes it to the terminals (:mod:`terminal.fares.signed`); until
then the terminal ships ``data/default_tariff.json``. The format is documented in
``docs/tariffs.md``. GTFS-Fares v2 files map as follows:

- ``fare_media.txt`` -> :class:`FareMedia` (type 2: physical transit card);
- ``rider_categories.txt`` -> :class:`RiderCategory` (with an eligibility URL);
- ``fare_products.txt`` -> :class:`FareProduct`, extended with what a card terminal needs: the
  kind of product (pass, carnet, pay-as-you-go, entitlement), validity period, networks, modes,
  carnet size, bike-shelter option, and the Intercode ContractTariff code;
- ``networks.txt``/``areas.txt`` -> :class:`Network`/:class:`Area` (an area is one tariff zone);
- ``fare_leg_rules.txt`` -> :class:`LegRule` (network and area -> leg group and product);
- ``fare_transfer_rules.txt`` -> :class:`TransferRule` (count, duration limit, transfer type).

Loading a file is the only IO here (:func:`load_tariff`); the models are frozen and the rules
only read them.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from terminal.fares.errors import TariffError
from terminal.fares.local_time import day_before_anniversary, last_day_of_month
from terminal.fares.model import (
    LEGACY_LILLE_NETWORK_ID,
    PLUM_NETWORK_ID,
    Mode,
    ProfileCode,
)

STANDARD_RIDER = "standard"  # rider category anyone belongs to
PHYSICAL_CARD_MEDIA_TYPE = 2  # GTFS-Fares v2 fare_media_type 2: physical transit card
DEFAULT_ANTI_PASSBACK_SECONDS = 450  # 7.5 minutes, the Paris tram practice


class ProductKind(StrEnum):
    """How a product is held on the card and spent at the gate."""

    PERIOD_PASS = "period_pass"  # a contract valid between two dates; nothing spent per trip
    CARNET = "carnet"  # a contract with a counter of trips, one spent per journey
    PAY_AS_YOU_GO = "pay_as_you_go"  # the fare taken from the wallet's stored value
    ENTITLEMENT = "entitlement"  # a right held in another application (Cursus, employment)


class ValidityPeriod(StrEnum):
    """How the end of a contract follows from its start when the card stores only the start."""

    CALENDAR_MONTH = "calendar_month"  # the month of the start date: February -> 28 or 29
    MONTH = "month"  # to the day before the anniversary (15 Jan -> 14 Feb, 31 Jan -> 28 Feb)
    YEAR = "year"  # to the day before the anniversary (29 Feb 2024 -> 28 Feb 2025)
    DAY = "day"  # the start day only
    NONE = "none"  # no end from the tariff: the card must carry one


class BikeShelter(StrEnum):
    """Whether a product opens the bike shelters."""

    NONE = "none"
    OPTION = "option"  # only when the contract carries the option
    INCLUDED = "included"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FareMedia(_Frozen):
    """GTFS-Fares v2 fare media."""

    fare_media_id: str
    fare_media_name: str
    fare_media_type: int = PHYSICAL_CARD_MEDIA_TYPE


class RiderCategory(_Frozen):
    """GTFS-Fares v2 rider category; the id is a :class:`ProfileCode` value or ``standard``."""

    rider_category_id: str
    rider_category_name: str
    is_default_fare_category: bool = False
    eligibility_url: str | None = None


class Network(_Frozen):
    """A transport network of the region and its mode."""

    network_id: int
    network_name: str
    mode: Mode


class Area(_Frozen):
    """A tariff zone (GTFS area)."""

    area_id: str
    area_name: str
    zone: int


class FareProduct(_Frozen):
    """One product of the catalogue.

    Attributes:
        fare_product_id: id used everywhere (contracts, events, rules).
        fare_product_name: name shown to people, in French.
        amount: price in eurocents (may be 0; entitlements cost nothing at the gate).
        currency: ISO 4217 code.
        fare_media_id: fare media it is sold on.
        rider_category_id: who may hold it (``standard`` = anyone).
        kind: how it is held and spent.
        validity: how the end date follows from the start date.
        networks: networks where it is valid (empty: the leg rules decide, for pay-as-you-go).
        modes: modes where it is valid.
        zone_count: zones the holder picks at purchase; ``None`` = every zone.
        trips: trips loaded in the counter (carnets).
        bike_shelter: whether it opens the bike shelters.
        card_code: Intercode ContractTariff value on the card, for the record mapper.
    """

    fare_product_id: str
    fare_product_name: str
    amount: int
    currency: str = "EUR"
    fare_media_id: str
    rider_category_id: str = STANDARD_RIDER
    kind: ProductKind
    validity: ValidityPeriod = ValidityPeriod.NONE
    networks: frozenset[int] = frozenset()
    modes: frozenset[Mode] = frozenset()
    zone_count: int | None = None
    trips: int | None = None
    bike_shelter: BikeShelter = BikeShelter.NONE
    card_code: int | None = None

    @model_validator(mode="after")
    def _carnet_has_trips(self) -> FareProduct:
        if self.kind is ProductKind.CARNET and not self.trips:
            raise ValueError(f"carnet {self.fare_product_id} needs a number of trips")
        return self

    def end_date(self, start: date) -> date | None:
        """Last valid day (inclusive) of a contract of this product that starts on ``start``."""
        match self.validity:
            case ValidityPeriod.CALENDAR_MONTH:
                return last_day_of_month(start.year, start.month)
            case ValidityPeriod.MONTH:
                return day_before_anniversary(start, 1)
            case ValidityPeriod.YEAR:
                return day_before_anniversary(start, 12)
            case ValidityPeriod.DAY:
                return start
            case _:
                return None


class LegRule(_Frozen):
    """GTFS-Fares v2 leg rule: a leg on this network (and area) belongs to a leg group and costs
    this product when paid trip by trip.

    ``from_area_id`` ``None`` matches every area of the network. ``to_area_id`` is kept for the
    GTFS shape; an entry validation does not know the destination, so the gate ignores it.
    """

    leg_group_id: str
    network_id: int
    from_area_id: str | None = None
    to_area_id: str | None = None
    fare_product_id: str | None = None


class TransferRule(_Frozen):
    """GTFS-Fares v2 transfer rule.

    Attributes:
        from_leg_group_id: leg group of the journey's previous leg.
        to_leg_group_id: leg group of the new leg.
        transfer_count: transfers allowed in one journey (-1: no limit).
        duration_limit: seconds from the journey's first validation to this validation
            (inclusive bound).
        duration_limit_type: GTFS code; 1 = departure validation to departure validation, the
            only one a gate can measure, counted here from the journey's first validation.
        fare_transfer_type: GTFS code; only free transfers are implemented (type 0 with no
            transfer product: the new leg costs nothing).
        allow_same_line: whether a transfer may go back onto the same line (return trip).
    """

    from_leg_group_id: str
    to_leg_group_id: str
    transfer_count: int = -1
    duration_limit: int = Field(gt=0)
    duration_limit_type: int = 1
    fare_transfer_type: int = 0
    allow_same_line: bool = False


class Tariff(_Frozen):
    """A whole tariff table, one version.

    Attributes:
        version: strictly increasing version; a terminal never goes back to an older one.
        valid_from: first day the table applies (local date).
        accepted_networks: environment network ids a card may carry.
        anti_passback_seconds: same card, same line or station within this window -> refused.
        reduced_fare_percent: reduction per holder profile on pay-as-you-go fares (percent off);
            the best valid profile applies.
        school_transport_product_id: entitlement product that records free school transport.
        mobility_aid_product_id: entitlement product that records the employment mobility aid.
    """

    version: int = Field(ge=1)
    valid_from: date
    timezone: str = "Europe/Paris"
    accepted_networks: frozenset[int] = frozenset({PLUM_NETWORK_ID, LEGACY_LILLE_NETWORK_ID})
    anti_passback_seconds: int = Field(default=DEFAULT_ANTI_PASSBACK_SECONDS, ge=0)
    reduced_fare_percent: dict[ProfileCode, int] = Field(default_factory=dict)
    school_transport_product_id: str
    mobility_aid_product_id: str
    fare_media: tuple[FareMedia, ...]
    rider_categories: tuple[RiderCategory, ...]
    networks: tuple[Network, ...]
    areas: tuple[Area, ...]
    fare_products: tuple[FareProduct, ...]
    leg_rules: tuple[LegRule, ...] = ()
    transfer_rules: tuple[TransferRule, ...] = ()

    _products: dict[str, FareProduct] = PrivateAttr(default_factory=dict)
    _areas_by_zone: dict[int, Area] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self) -> Tariff:
        if self.timezone != "Europe/Paris":
            raise ValueError("decisions are taken in Europe/Paris local time")
        products = {p.fare_product_id: p for p in self.fare_products}
        if len(products) != len(self.fare_products):
            raise ValueError("duplicate fare_product_id")
        media = {m.fare_media_id for m in self.fare_media}
        riders = {r.rider_category_id for r in self.rider_categories}
        areas = {a.area_id for a in self.areas}
        for m in self.fare_media:
            if m.fare_media_type != PHYSICAL_CARD_MEDIA_TYPE:
                raise ValueError(f"fare media {m.fare_media_id}: only type 2 (card) is sold")
        for p in self.fare_products:
            if p.fare_media_id not in media:
                raise ValueError(f"{p.fare_product_id}: unknown fare media {p.fare_media_id}")
            if p.rider_category_id not in riders:
                raise ValueError(f"{p.fare_product_id}: unknown rider {p.rider_category_id}")
        for code in (self.school_transport_product_id, self.mobility_aid_product_id):
            if code not in products or products[code].kind is not ProductKind.ENTITLEMENT:
                raise ValueError(f"{code} must be an entitlement product of the table")
        groups = {r.leg_group_id for r in self.leg_rules}
        for rule in self.leg_rules:
            if rule.fare_product_id is not None and rule.fare_product_id not in products:
                raise ValueError(f"leg rule {rule.leg_group_id}: unknown product")
            for area in (rule.from_area_id, rule.to_area_id):
                if area is not None and area not in areas:
                    raise ValueError(f"leg rule {rule.leg_group_id}: unknown area {area}")
        for t in self.transfer_rules:
            if {t.from_leg_group_id, t.to_leg_group_id} - groups:
                raise ValueError("transfer rule refers to an unknown leg group")
            if t.fare_transfer_type != 0:
                raise ValueError("only free transfers (fare_transfer_type 0) are implemented")
        for profile, percent in self.reduced_fare_percent.items():
            if not 0 <= percent <= 100:
                raise ValueError(f"reduction for {profile} must be 0..100 percent")
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Index products and areas once; the model is frozen afterwards."""
        self._products = {p.fare_product_id: p for p in self.fare_products}
        self._areas_by_zone = {a.zone: a for a in self.areas}

    def product(self, product_id: str | None) -> FareProduct | None:
        """The product with this id, or ``None`` if the table does not know it."""
        if product_id is None:
            return None
        return self._products.get(product_id)

    def product_by_card_code(self, card_code: int) -> FareProduct | None:
        """The product whose Intercode ContractTariff is ``card_code`` (for the record mapper)."""
        return next((p for p in self.fare_products if p.card_code == card_code), None)

    def network(self, network_id: int) -> Network | None:
        """The network with this id, or ``None``."""
        return next((n for n in self.networks if n.network_id == network_id), None)

    def leg_rule(self, network_id: int, zone: int) -> LegRule | None:
        """The leg rule for an entry on ``network_id`` in ``zone``: a rule naming the zone's area
        wins over a network-wide rule."""
        area = self._areas_by_zone.get(zone)
        candidates = [r for r in self.leg_rules if r.network_id == network_id]
        for rule in candidates:
            if area is not None and rule.from_area_id == area.area_id:
                return rule
        return next((r for r in candidates if r.from_area_id is None), None)

    def transfer_rule(self, from_group: str, to_group: str) -> TransferRule | None:
        """The transfer rule between two leg groups, or ``None`` (no free transfer)."""
        return next(
            (
                t
                for t in self.transfer_rules
                if t.from_leg_group_id == from_group and t.to_leg_group_id == to_group
            ),
            None,
        )

    def reduced_amount(self, amount: int, profiles: frozenset[ProfileCode]) -> int:
        """``amount`` after the best reduction among ``profiles``, rounded half up to the cent."""
        best = max((self.reduced_fare_percent.get(p, 0) for p in profiles), default=0)
        return (amount * (100 - best) + 50) // 100


def parse_tariff(data: Any) -> Tariff:
    """Validate a decoded JSON object as a tariff table.

    Raises:
        TariffError: the object is not a valid table (the message lists the first problems).
    """
    try:
        return Tariff.model_validate(data)
    except ValidationError as exc:
        raise TariffError(f"tariff table does not validate: {exc}") from exc


def load_tariff(path: Path | None = None) -> Tariff:
    """Read a tariff table from a JSON file; without ``path``, the packaged default table.

    Raises:
        TariffError: unreadable file, bad JSON, or invalid table.
    """
    try:
        if path is None:
            text = resources.files("terminal.fares").joinpath("data/default_tariff.json")
            raw = text.read_text(encoding="utf-8")
        else:
            raw = path.read_text(encoding="utf-8")
        data = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise TariffError(f"cannot read tariff table {path or 'default'}: {exc}") from exc
    return parse_tariff(data)
