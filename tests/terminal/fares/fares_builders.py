"""Builders shared by the fare tests: places of the default tariff, card images, events.

Every instant is a fixed Europe/Paris local time; no test reads the wall clock.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from terminal.fares.denylist import DenyList
from terminal.fares.model import (
    CardImage,
    Contract,
    Environment,
    Event,
    EventKind,
    GateKind,
    Mode,
    Place,
    Tap,
)
from terminal.fares.tariff import load_tariff

PARIS = ZoneInfo("Europe/Paris")
TARIFF = load_tariff()
NO_DENY = DenyList()
SERIAL = "0102030405060708"

# Places of the default tariff (terminal/fares/data/default_tariff.json).
METRO = Place(station_id=101, zone=1, network_id=250001, mode=Mode.URBAN)  # station gate
METRO_OTHER = Place(station_id=102, zone=1, network_id=250001, mode=Mode.URBAN)
BUS_12 = Place(station_id=201, zone=1, network_id=250001, mode=Mode.URBAN, line_id=12)
BUS_12_NEXT = Place(station_id=202, zone=1, network_id=250001, mode=Mode.URBAN, line_id=12)
BUS_ZONE2 = Place(station_id=301, zone=2, network_id=250002, mode=Mode.URBAN, line_id=7)
COACH = Place(station_id=401, zone=3, network_id=250003, mode=Mode.COACH, line_id=620)
TER = Place(station_id=501, zone=4, network_id=250004, mode=Mode.TER)
SHELTER = Place(station_id=601, zone=1, network_id=250001, mode=Mode.URBAN)


def at(
    year: int, month: int, day: int, hour: int = 8, minute: int = 0, second: int = 0, fold: int = 0
) -> datetime:
    """An aware Europe/Paris instant (``fold=1``: the second 02:xx of the autumn DST change)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS, fold=fold)


def card(**fields: Any) -> CardImage:
    """A valid regional card with nothing on it unless ``fields`` say so."""
    fields.setdefault("serial", SERIAL)
    fields.setdefault("environment", Environment(valid_until=date(2030, 12, 31)))
    return CardImage(**fields)


def contract(
    product_id: str = "PASS_MOIS_1Z",
    start: date | datetime = date(2025, 3, 1),
    end: date | datetime | None = None,
    *,
    zones: frozenset[int] = frozenset({1}),
    slot: int = 1,
    **fields: Any,
) -> Contract:
    """A contract; by default a March 2025 monthly pass for zone 1."""
    return Contract(slot=slot, product_id=product_id, start=start, end=end, zones=zones, **fields)


def carnet(slot: int = 2, counter_slot: int = 1) -> Contract:
    """A carnet of 10 trips whose trips live in ``counter_slot``."""
    return Contract(
        slot=slot,
        product_id="CARNET_10",
        start=date(2025, 1, 1),
        zones=frozenset(),
        counter_slot=counter_slot,
    )


def event(
    when: datetime,
    place: Place,
    *,
    product_id: str | None = "TICKET_UNITAIRE",
    contract_slot: int | None = None,
    kind: EventKind = EventKind.ENTRY,
    journey_start: datetime | None = None,
    transfers: int = 0,
) -> Event:
    """A past validation at ``place``."""
    return Event(
        when=when,
        station_id=place.station_id,
        line_id=place.line_id,
        network_id=place.network_id,
        kind=kind,
        journey_start=journey_start or when,
        contract_slot=contract_slot,
        product_id=product_id,
        transfers=transfers,
    )


def tap(when: datetime, place: Place = METRO, gate: GateKind = GateKind.GATE) -> Tap:
    """The card presented at ``place`` at ``when``."""
    return Tap(when=when, place=place, gate=gate)
