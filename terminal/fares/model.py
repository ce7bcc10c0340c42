"""Terminal domain model of the card: what the fare rules need to know, nothing of the bit layout.

The raw EN 1545 / Intercode records (``card_schema/records/``) are decoded elsewhere and mapped to
these frozen dataclasses (Metrodroid keeps the same split between ``card/`` and ``transit/``). The
fare rules (:mod:`terminal.fares.rules`) are pure functions over a :class:`CardImage`.

Time: every ``datetime`` may be aware or naive; naive ones are Europe/Paris wall-clock time, as on
the card (see :mod:`terminal.fares.local_time`). Dates are local calendar dates.

Validity ends: a ``date`` end is inclusive to the end of that day; a ``datetime`` end is exclusive
(the contract is valid while ``now < end``). A ``date`` start begins at 00:00 of that day; a
``datetime`` start is inclusive.

Privacy: the :class:`Event` written to the transit event log holds the place, the time, the
contract slot and the product code, and nothing about the holder: no holder profile (student, job
seeker, senior), no employment situation, no right details. Mobility aid used at a gate appears in
the event only as its entitlement code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType

from terminal.fares.errors import FareModelError

PLUM_NETWORK_ID = 250_000  # Intercode network id of the card environment (France, Hauts-de-France)
LEGACY_LILLE_NETWORK_ID = 250_149  # older Pass Pass cards of the Lille network, still accepted
MIN_YEAR, MAX_YEAR = 1900, 9000  # dates a card image may carry (EN 1545 dates start in 1997)


class Mode(StrEnum):
    """Transport mode of a place or a contract."""

    URBAN = "urban"  # metro, tram, urban bus
    COACH = "coach"  # regional coaches
    TER = "ter"  # regional trains


class GateKind(StrEnum):
    """What kind of terminal the card was presented to."""

    GATE = "gate"  # validator or barrier: decides and writes
    BIKE_SHELTER = "bike_shelter"  # bike-shelter door: opens or not, writes nothing
    INSPECTOR = "inspector"  # inspector's reader: reads and explains, never writes


class EventKind(StrEnum):
    """Kind of a transit event (Intercode EventCode nature, simplified)."""

    ENTRY = "entry"  # first validation of a journey
    TRANSFER = "transfer"  # validation within the transfer window of a journey
    EXIT = "exit"  # exit validation (TER stations, some metro lines)


class ProfileCode(StrEnum):
    """Holder profiles that change what a holder pays (Intercode HolderProfile social categories).

    The values are also the GTFS-Fares v2 ``rider_category_id`` of the tariff table.
    """

    STUDENT = "student"
    JOB_SEEKER = "job_seeker"
    SENIOR = "senior"


def _check_slot(value: int, what: str) -> None:
    if value < 0:
        raise FareModelError(f"{what} must not be negative, got {value}")


def _check_year(moment: date | None, what: str) -> None:
    # Keeps time-zone conversions and "start + 12 months" inside what datetime can represent.
    if moment is not None and not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise FareModelError(f"{what} year {moment.year} outside {MIN_YEAR}..{MAX_YEAR}")


@dataclass(frozen=True)
class HolderProfile:
    """One holder profile and its validity (inclusive dates; ``None`` means open-ended)."""

    code: ProfileCode
    valid_until: date | None = None
    valid_from: date | None = None

    def is_valid_on(self, day: date) -> bool:
        """Whether the profile applies on the local date ``day``."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


@dataclass(frozen=True)
class Environment:
    """The PLUM environment record: which network issued the card and until when it is valid.

    Attributes:
        network_id: Intercode EnvNetworkId (250000 for the regional card).
        valid_until: EnvApplicationValidityEndDate, inclusive.
    """

    valid_until: date
    network_id: int = PLUM_NETWORK_ID


@dataclass(frozen=True)
class Contract:
    """One transit contract record, interpreted.

    Attributes:
        slot: record number in the contracts file (1-based, as in Read Record).
        product_id: the tariff's ``fare_product_id`` (mapped from Intercode ContractTariff).
        start: first day (``date``) or instant (``datetime``) of validity.
        end: last day (``date``, inclusive) or end instant (``datetime``, exclusive); ``None``
            when the card stores only a start and the tariff product gives the duration.
        zones: zones bought; empty means no zone restriction (network-wide product).
        network_id: network that sold the contract (ContractNetworkId).
        modes: modes written on the contract; empty means the product's modes.
        includes_bike_shelter: the bike-shelter option is on this contract.
        counter_slot: counter holding the remaining trips of a carnet, else ``None``.
    """

    slot: int
    product_id: str
    start: date | datetime
    end: date | datetime | None = None
    zones: frozenset[int] = frozenset()
    network_id: int = PLUM_NETWORK_ID
    modes: frozenset[Mode] = frozenset()
    includes_bike_shelter: bool = False
    counter_slot: int | None = None

    def __post_init__(self) -> None:
        _check_slot(self.slot, "contract slot")
        _check_year(self.start, "contract start")
        _check_year(self.end, "contract end")
        if self.counter_slot is not None:
            _check_slot(self.counter_slot, "counter slot")


@dataclass(frozen=True)
class Event:
    """One transit event, as read from the event log or as a decision asks to append it.

    Attributes:
        when: instant of the validation.
        station_id: location id (Intercode EventLocationId).
        line_id: line or route (EventRouteNumber), ``None`` where the place has no line (stations).
        network_id: network of the place.
        kind: entry, transfer or exit.
        journey_start: instant of the first entry of the journey (EventFirstStampDate/Time), from
            which the transfer window is measured.
        contract_slot: contract used, or ``None`` (wallet, entitlement of another application).
        product_id: fare product or entitlement code used (``"TICKET_UNITAIRE"``,
            ``"TRANSPORT_SCOLAIRE"``, ``"AIDE_MOBILITE_EMPLOI"``...), never a holder attribute.
        transfers: transfers made so far in the journey (0 on an entry).
    """

    when: datetime
    station_id: int
    line_id: int | None
    network_id: int
    kind: EventKind
    journey_start: datetime
    contract_slot: int | None = None
    product_id: str | None = None
    transfers: int = 0

    def __post_init__(self) -> None:
        _check_slot(self.transfers, "transfer count")
        _check_year(self.when, "event time")
        _check_year(self.journey_start, "journey start")


@dataclass(frozen=True)
class SchoolTransportEntitlement:
    """Free school transport held in the Cursus application.

    Attributes:
        zones: zones where the transport is free (home to school).
        valid_from: first day of the school year covered (inclusive).
        valid_until: last day of the school year covered (inclusive).
        school_weekdays: days of the week with school, Monday = 0 (Wednesday often absent).
        non_school_days: dates without school inside the year (holidays, bank holidays).
    """

    zones: frozenset[int]
    valid_from: date
    valid_until: date
    school_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    non_school_days: frozenset[date] = frozenset()

    def is_school_day(self, day: date) -> bool:
        """Within the school year, a school weekday, and not a holiday."""
        return (
            self.valid_from <= day <= self.valid_until
            and day.weekday() in self.school_weekdays
            and day not in self.non_school_days
        )


@dataclass(frozen=True)
class MobilityAid:
    """Mobility aid held in Mes droits pour l'emploi (one rights record).

    The aid pays either a number of trips or an amount in eurocents; the decision spends one trip,
    or the fare of the leg from the amount.

    Attributes:
        record: rights record number in the employment application (where to write the debit).
        valid_from: first day (inclusive).
        valid_until: last day (inclusive).
        trips_remaining: trips left, or ``None`` for an amount-based aid.
        amount_remaining: eurocents left, or ``None`` for a trip-based aid.
    """

    record: int
    valid_from: date
    valid_until: date
    trips_remaining: int | None = None
    amount_remaining: int | None = None

    def __post_init__(self) -> None:
        _check_slot(self.record, "rights record")
        for value, what in ((self.trips_remaining, "trips"), (self.amount_remaining, "amount")):
            if value is not None:
                _check_slot(value, f"mobility aid {what}")


@dataclass(frozen=True)
class CardImage:
    """Everything the fare rules read from the card, across its four applications.

    Attributes:
        serial: card serial number, upper-case hex (normalised here).
        environment: PLUM environment record.
        invalidated: the PLUM application was invalidated (Calypso Invalidate).
        profiles: holder profiles with their validity.
        contracts: contracts in the contracts file.
        counters: counter number -> remaining trips (carnets); read-only mapping.
        events: last events of the event log, in any order.
        sv_balance: stored value of the wallet in eurocents (may be negative where the SV allows
            an overdraft), or ``None`` when the card has no wallet.
        school_transport: Cursus free school transport, or ``None``.
        mobility_aid: mobility aid of Mes droits pour l'emploi, or ``None``.
    """

    serial: str
    environment: Environment
    invalidated: bool = False
    profiles: tuple[HolderProfile, ...] = ()
    contracts: tuple[Contract, ...] = ()
    counters: Mapping[int, int] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    sv_balance: int | None = None
    school_transport: SchoolTransportEntitlement | None = None
    mobility_aid: MobilityAid | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "serial", normalise_serial(self.serial))
        for slot, remaining in self.counters.items():
            _check_slot(slot, "counter slot")
            _check_slot(remaining, f"counter {slot}")
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))
        object.__setattr__(self, "profiles", tuple(self.profiles))
        object.__setattr__(self, "contracts", tuple(self.contracts))
        object.__setattr__(self, "events", tuple(self.events))

    def remaining(self, counter_slot: int | None) -> int:
        """Trips left in a counter (0 for an absent counter or no counter)."""
        if counter_slot is None:
            return 0
        return self.counters.get(counter_slot, 0)


@dataclass(frozen=True)
class Place:
    """Where the terminal stands.

    Attributes:
        station_id: location id written in the event.
        zone: tariff zone of the place.
        network_id: network operating the place.
        mode: transport mode.
        line_id: line or route for on-board validators; ``None`` at station gates.
    """

    station_id: int
    zone: int
    network_id: int
    mode: Mode
    line_id: int | None = None


@dataclass(frozen=True)
class Tap:
    """One presentation of the card.

    Attributes:
        when: instant of the tap (the terminal's clock).
        place: where.
        gate: validator, bike-shelter door or inspector.
    """

    when: datetime
    place: Place
    gate: GateKind = GateKind.GATE


def normalise_serial(serial: str) -> str:
    """Card serial as upper-case hex without spaces or separators."""
    return serial.replace(" ", "").replace(":", "").upper()


def zones_from_bitmap(bitmap: int) -> frozenset[int]:
    """Zones of an Intercode-style zone bitmap: bit 0 is zone 1, bit 1 zone 2, and so on."""
    return frozenset(bit + 1 for bit in range(bitmap.bit_length()) if bitmap >> bit & 1)
