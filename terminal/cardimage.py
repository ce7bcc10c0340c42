"""From the card's raw records (engine image) to the fare rules' domain model, and back for events.

:func:`fare_card_image` decodes the PLUM, wallet, Cursus and employment records the engine read
(``card_schema.records``, field names as declared there) into a :class:`terminal.fares.model.
CardImage`; :func:`encode_event` turns the :class:`~terminal.fares.model.Event` a decision asks to
append into the 29-byte ``plum.event`` record.

Conventions of this mapping (docs/gate.md):

- The product of a contract is its ``ContractTariff``, equal to the tariff table's ``card_code``.
- A carnet's trips are in counter *i* of the counters file for contract record *i* (Metrodroid
  ``Calypso1545TransitData.getCounter``).
- The bike-shelter option of a contract is bit 0 of ``ContractServices``.
- An event stores the product or entitlement ``card_code`` in ``EventDisplayData`` (8 bits), the
  transfers of the journey in ``EventJourneyInterchanges``, the journey start in
  ``EventDataDateFirstStamp`` / ``EventDataTimeFirstStamp``; ``EventCode`` is mode (high nibble:
  1 urban bus, 2 coach, 5 train) and transition (low nibble: 1 entry, 2 exit, 6 transfer).
- Holder profiles: 1 (scolaire) and 2 (jeune -26) are ``student``, 3 ``job_seeker``, 4
  ``senior``; other numbers give no reduction.
- Times on the card are Europe/Paris wall-clock minutes: decoded datetimes are naive local times.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from card_schema.errors import SchemaError
from card_schema.records import decode_record, encode_record
from terminal.engine.image import ApplicationImage, CalypsoCard
from terminal.fares.model import (
    CardImage,
    Contract,
    Environment,
    Event,
    EventKind,
    HolderProfile,
    MobilityAid,
    Mode,
    ProfileCode,
    SchoolTransportEntitlement,
)
from terminal.fares.tariff import Tariff

log = logging.getLogger(__name__)

PARIS = ZoneInfo("Europe/Paris")
NO_DATE = date(1997, 1, 1)  # EN 1545 epoch: an environment without an end date is expired
BIKE_SHELTER_SERVICE = 0x0001

PROFILE_CODES: dict[int, ProfileCode] = {
    1: ProfileCode.STUDENT,
    2: ProfileCode.STUDENT,
    3: ProfileCode.JOB_SEEKER,
    4: ProfileCode.SENIOR,
}
MODE_NIBBLE: dict[Mode, int] = {Mode.URBAN: 1, Mode.COACH: 2, Mode.TER: 5}
KIND_NIBBLE: dict[EventKind, int] = {EventKind.ENTRY: 1, EventKind.EXIT: 2, EventKind.TRANSFER: 6}
_NIBBLE_KIND = {v: k for k, v in KIND_NIBBLE.items()}


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def _time(value: Any) -> time | None:
    return time.fromisoformat(value) if isinstance(value, str) else None


def _moment(day: Any, clock: Any) -> date | datetime | None:
    d = _date(day)
    if d is None:
        return None
    t = _time(clock)
    return d if t is None else datetime.combine(d, t)


def local_naive(moment: datetime) -> datetime:
    """``moment`` as naive Europe/Paris wall-clock time (what the card stores)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(PARIS).replace(tzinfo=None)


# -- PLUM ---------------------------------------------------------------------------------------


def decode_environment(raw: bytes | None) -> tuple[Environment, tuple[HolderProfile, ...]]:
    """Environment and holder profiles of a ``plum.environment`` record."""
    if raw is None:
        return Environment(valid_until=NO_DATE, network_id=0), ()
    values = decode_record("plum.environment", raw)
    network = values.get("EnvNetworkId")
    env = Environment(
        valid_until=_date(values.get("EnvApplicationValidityEndDate")) or NO_DATE,
        network_id=network if isinstance(network, int) else 0,
    )
    profiles = []
    for entry in values.get("HolderProfiles") or []:
        code = PROFILE_CODES.get(entry.get("HolderProfileNumber", -1))
        if code is not None:
            profiles.append(HolderProfile(code, _date(entry.get("HolderProfileDate"))))
    return env, tuple(profiles)


def decode_contracts(
    app: ApplicationImage, tariff: Tariff, network_id: int
) -> tuple[Contract, ...]:
    """Contracts the contract list points to, decoded with the layout its tariff announces."""
    list_raw = app.record("contract_list")
    if list_raw is None:
        return ()
    contracts = []
    for entry in decode_record("plum.contract_list", list_raw).get("BestContracts") or []:
        pointer = entry.get("BestContractPointer")
        raw = app.record("contracts", pointer) if isinstance(pointer, int) else None
        if raw is None or not any(raw):
            continue
        try:
            contracts.append(
                _contract(
                    pointer,
                    decode_record("plum.contract", raw, tariff=entry.get("BestContractTariff")),
                    tariff,
                    network_id,
                )
            )
        except (SchemaError, ValueError) as exc:
            log.warning("contract %s unreadable, ignored: %s", pointer, exc)
    return tuple(contracts)


def _contract(slot: int, values: dict[str, Any], tariff: Tariff, network_id: int) -> Contract:
    code = values.get("ContractTariff")
    product = tariff.product_by_card_code(code) if isinstance(code, int) else None
    product_id = product.fare_product_id if product is not None else f"UNKNOWN_{code}"
    validity = values.get("ContractValidityInfo") or {}
    data = values.get("ContractData") if isinstance(values.get("ContractData"), dict) else {}
    zones = validity.get("ContractValidityZones") or (data or {}).get("ContractZones") or []
    start = _moment(
        validity.get("ContractValidityStartDate"), validity.get("ContractValidityStartTime")
    )
    end = _moment(validity.get("ContractValidityEndDate"), validity.get("ContractValidityEndTime"))
    contract_network = values.get("ContractNetworkId")
    services = values.get("ContractServices") or 0
    is_carnet = product is not None and product.kind == "carnet"
    return Contract(
        slot=slot,
        product_id=product_id,
        start=start or NO_DATE,
        end=end,
        zones=frozenset(int(z) for z in zones),
        network_id=contract_network if isinstance(contract_network, int) else network_id,
        includes_bike_shelter=bool(services & BIKE_SHELTER_SERVICE),
        counter_slot=slot if is_carnet else None,
    )


def decode_counters(raw: bytes | None) -> dict[int, int]:
    """Counter number -> value of a ``plum.counters`` record."""
    if raw is None:
        return {}
    values = decode_record("plum.counters", raw)
    return {int(k.split("_")[1]): int(v) for k, v in values.items() if k.startswith("counter_")}


def decode_event(raw: bytes, tariff: Tariff) -> Event | None:
    """One ``plum.event`` record, or ``None`` for an empty one."""
    if not any(raw):
        return None
    values = decode_record("plum.event", raw)
    when = _moment(values.get("EventDateStamp"), values.get("EventTimeStamp"))
    if not isinstance(when, datetime):
        return None
    data = values.get("EventData") or {}
    first = _moment(data.get("EventDataDateFirstStamp"), data.get("EventDataTimeFirstStamp"))
    code = values.get("EventCode", 0x11)
    pointer = values.get("EventContractPointer")
    display = values.get("EventDisplayData")
    product = tariff.product_by_card_code(display) if isinstance(display, int) else None
    return Event(
        when=when,
        station_id=int(values.get("EventLocationId", 0)),
        line_id=values.get("EventRouteNumber"),
        network_id=int(values.get("EventNetworkId", 0)),
        kind=_NIBBLE_KIND.get(code & 0x0F, EventKind.ENTRY),
        journey_start=first if isinstance(first, datetime) else when,
        contract_slot=pointer or None,
        product_id=product.fare_product_id if product is not None else None,
        transfers=int(values.get("EventJourneyInterchanges", 0)),
    )


def encode_event(event: Event, tariff: Tariff, mode: Mode) -> bytes:
    """The 29-byte ``plum.event`` record of a decision's event."""
    when = local_naive(event.when)
    first = local_naive(event.journey_start)
    values: dict[str, Any] = {
        "EventDateStamp": when.date().isoformat(),
        "EventTimeStamp": when.strftime("%H:%M"),
        "EventNetworkId": event.network_id,
        "EventCode": MODE_NIBBLE[mode] << 4 | KIND_NIBBLE[event.kind],
        "EventLocationId": event.station_id,
        "EventJourneyInterchanges": event.transfers,
        "EventData": {
            "EventDataDateFirstStamp": first.date().isoformat(),
            "EventDataTimeFirstStamp": first.strftime("%H:%M"),
        },
    }
    if event.line_id is not None:
        values["EventRouteNumber"] = event.line_id
    if event.contract_slot is not None:
        values["EventContractPointer"] = event.contract_slot
    product = tariff.product(event.product_id)
    if product is not None and product.card_code is not None:
        values["EventDisplayData"] = product.card_code
    return encode_record("plum.event", values)


# -- other applications -----------------------------------------------------------------------


def decode_school_transport(raw: bytes | None) -> SchoolTransportEntitlement | None:
    """Free school transport of a ``cursus.student`` record, if it grants it."""
    if raw is None or not any(raw):
        return None
    values = decode_record("cursus.student", raw)
    start, end = _date(values.get("valid_from")), _date(values.get("valid_until"))
    if values.get("school_transport") != "free" or start is None or end is None:
        return None
    return SchoolTransportEntitlement(
        zones=frozenset(values.get("transport_zones") or ()), valid_from=start, valid_until=end
    )


def decode_mobility_aid(records: list[tuple[int, bytes]]) -> MobilityAid | None:
    """The first open mobility-aid right among ``(record number, employment.right)`` pairs."""
    for number, raw in records:
        if not any(raw):
            continue
        values = decode_record("employment.right", raw)
        start, end = _date(values.get("valid_from")), _date(values.get("valid_until"))
        if values.get("right") != "mobility_aid" or values.get("status") != "open":
            continue
        if start is None or end is None:
            continue
        remaining = int(values.get("remaining", 0))
        if values.get("unit") == "eurocents":
            return MobilityAid(number, start, end, amount_remaining=remaining)
        return MobilityAid(number, start, end, trips_remaining=remaining)
    return None


def fare_card_image(card: CalypsoCard, tariff: Tariff) -> CardImage:
    """The fare rules' view of everything the engine read from ``card``.

    Applications not read (or absent) contribute nothing: no wallet read means
    ``sv_balance=None``, no Cursus read means no school transport.
    """
    plum = card.applications.get("plum")
    if plum is None:
        env, profiles = decode_environment(None)
        return CardImage(serial=card.serial.hex(), environment=env)
    env, profiles = decode_environment(plum.record("environment"))
    events = tuple(
        e
        for e in (decode_event(raw, tariff) for raw in plum.file_records("events"))
        if e is not None
    )
    wallet = card.applications.get("wallet")
    cursus = card.applications.get("cursus")
    employment = card.applications.get("employment")
    rights: list[tuple[int, bytes]] = []
    if employment is not None:
        rights = sorted(employment.records.get("rights", {}).items())
    return CardImage(
        serial=card.serial.hex(),
        environment=env,
        invalidated=plum.invalidated,
        profiles=profiles,
        contracts=decode_contracts(plum, tariff, env.network_id),
        counters=decode_counters(plum.record("counters")),
        events=events,
        sv_balance=wallet.sv.balance if wallet is not None and wallet.sv is not None else None,
        school_transport=decode_school_transport(
            cursus.record("student") if cursus is not None else None
        ),
        mobility_aid=decode_mobility_aid(rights),
    )
