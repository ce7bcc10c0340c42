"""PLUM, the transit application: Intercode (NF P99-405) records in EN 1545 encoding.

The field names, widths and orders are those of the public Intercode readers, cross-checked:
Metrodroid (``transit/intercode/IntercodeTransitData.kt``, ``IntercodeTransaction.kt``,
``IntercodeSubscription.kt``), cardpeek (``calypso.lua``), elafargue's ``intercode2.js`` and the
Flipper metroflip ``intercode.c``. Where they disagree the width is a per-network setting
(:mod:`card_schema.records.variant`). docs/card-layout.md lists every field with its source.

Records:

- ``plum.environment``: Environment (``Env*``) followed by Holder (``Holder*``) in one record
  (file 2001, as Metrodroid's ``TICKET_ENV_HOLDER_FIELDS``).
- ``plum.event`` and ``plum.special_event``: the event log (2010) and special events (2040) share
  one layout (cardpeek and Metrodroid read both with it). Privacy rule of this project: the event
  carries no holder, profile, employment or social field; nothing is ever added to it for that.
- ``plum.contract``: layout chosen by the tariff type of the contract-list entry
  (``(BestContractTariff >> 4) & 0xFF``): ``0xFF`` the generic FF layout, ``0x20`` and ``0x46``
  the compact layouts Metrodroid documents, any other type the compact common part followed by
  opaque ``ContractData`` (kept bit for bit).
- ``plum.contract_list``: the BestContracts list (2050).
- ``plum.counters``: the common counter file (2069): nine 3-byte counters, counter *i* belonging
  to contract record *i* (Metrodroid ``Calypso1545TransitData.getCounter``).
- ``plum.contract_counter``: the one 3-byte record of a per-contract counter file (202A-202D), a
  simulated counter file showing counter *i* of 2069 (Metrodroid reads its bytes 0..2 when the
  common file is absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from card_schema import en1545
from card_schema.en1545 import (
    Alpha,
    Amount,
    BcdDate,
    Bitmap,
    Date,
    Group,
    NetworkId,
    Repeat,
    Rest,
    Time,
    UInt,
    Zones,
)
from card_schema.errors import SchemaError
from card_schema.layout import COUNTER_SIZE, COUNTERS_PER_RECORD
from card_schema.records.base import Fields, RecordContext, RecordType, fixed
from card_schema.records.variant import PlumVariant, variant_for_network

NETWORK_ID = 250000  # Hauts-de-France regional network (France = 250)
LEGACY_NETWORK_ID = 250149  # older Lille network id, still accepted by PLUM terminals

# Holder profile numbers of the regional network (HolderProfileNumber). Network-specific: another
# network's numbers mean other things, so the record keeps the number and this table names it.
HOLDER_PROFILES: Mapping[int, str] = {
    1: "scolaire (school pupil)",
    2: "jeune -26 ans (under 26)",
    3: "demandeur d'emploi (job seeker)",
    4: "senior 65+",
    5: "handicap (disability)",
    6: "solidaire (reduced income)",
}

# EventCode: high nibble = transport mode, low nibble = transition (Intercode; as listed in
# elafargue's intercode2.js and Metrodroid's En1545Transaction).
EVENT_MODES: Mapping[int, str] = {
    1: "bus urbain",
    2: "bus interurbain",
    3: "métro",
    4: "tram",
    5: "train",
    8: "parking",
}
EVENT_TRANSITIONS: Mapping[int, str] = {
    1: "validation en entrée",
    2: "validation en sortie",
    4: "contrôle à bord",
    5: "validation de test",
    6: "correspondance (entrée)",
    7: "correspondance (sortie)",
    9: "annulation de validation",
    15: "invalidation",
}


# --------------------------------------------------------------------------- environment + holder


@cache
def environment_fields(variant: PlumVariant) -> Fields:
    """Environment then Holder, one 29-byte record (Intercode file 2001).

    Built once per variant (a variant is frozen, a field list immutable): every decode and encode
    of an environment record asks for it.
    """
    env = (
        UInt("EnvApplicationVersionNumber", 6, doc="Intercode application version"),
        Bitmap(
            None,
            (
                NetworkId("EnvNetworkId", doc="network of the application (250000)"),
                UInt("EnvApplicationIssuerId", 8, doc="issuer of the application"),
                Date("EnvApplicationValidityEndDate", doc="application end of validity"),
                UInt("EnvPayMethod", 11, doc="payment method code"),
                UInt("EnvAuthenticator", 16, doc="integrity code"),
                UInt("EnvSelectList", 32, doc="multiple parameter table bitmap"),
                Bitmap(
                    "EnvData",
                    (
                        UInt("EnvDataCardStatus", 1, doc="card status"),
                        Rest("EnvData2", doc="network data of unspecified length"),
                    ),
                ),
            ),
            doc="Environment bitmap",
        ),
    )
    holder = Bitmap(
        None,
        (
            Bitmap(
                "HolderName",
                (
                    Alpha("HolderSurname", 85, doc="surname, 17 characters"),
                    Alpha("HolderForename", 85, doc="forename, 17 characters"),
                ),
            ),
            Bitmap(
                "HolderBirth",
                (
                    BcdDate("HolderBirthDate", doc="birth date"),
                    Alpha("HolderBirthPlace", 115, doc="birth place, 23 characters"),
                ),
            ),
            Alpha("HolderBirthName", 85, doc="birth name, 17 characters"),
            UInt("HolderIdNumber", 32, doc="holder identifier"),
            UInt("HolderCountryAlpha", 24, doc="holder country"),
            UInt("HolderCompany", 32, doc="holder company"),
            Repeat(
                "HolderProfiles",
                variant.holder_profile_count_bits,
                Bitmap(
                    None,
                    (
                        NetworkId("HolderProfileNetworkId", doc="network the profile is for"),
                        UInt("HolderProfileNumber", 8, doc="profile (social category) number"),
                        Date("HolderProfileDate", doc="end of validity of the profile"),
                    ),
                ),
                doc="holder profiles; counter width per network (2 or 4 bits)",
            ),
            Bitmap(
                "HolderData",
                (
                    UInt("HolderDataCardStatus", 4, doc="0 anonymous, 1 declarative, 2 personal"),
                    UInt("HolderDataTeleReglement", 4, doc="direct debit"),
                    UInt("HolderDataResidence", 17, doc="home town"),
                    UInt("HolderDataCommercialID", 6, doc="card product"),
                    UInt("HolderDataWorkPlace", 17, doc="work place"),
                    UInt("HolderDataStudyPlace", 17, doc="study place"),
                    UInt("HolderDataSaleDevice", 16, doc="SAM logical number of the sale"),
                    UInt("HolderDataAuthenticator", 16, doc="signature"),
                    Date("HolderDataProfileStartDate1", doc="start of profile 1"),
                    Date("HolderDataProfileStartDate2", doc="start of profile 2"),
                    Date("HolderDataProfileStartDate3", doc="start of profile 3"),
                    Date("HolderDataProfileStartDate4", doc="start of profile 4"),
                ),
            ),
        ),
        doc="Holder bitmap",
    )
    return (*env, holder)


def network_id_of_environment(raw: bytes) -> int | None:
    """The ``EnvNetworkId`` of an environment record, read before the rest (it selects the variant).

    It sits at bits 13..36 when present: 6 bits of version, then 7 of bitmap (Metrodroid
    ``IntercodeTransitData.getNetId`` reads the same bits).
    """
    if len(raw) < 5:
        return None
    value = int.from_bytes(raw[:5], "big")
    if not (value >> (40 - 13)) & 1:  # bit 0 of the 7-bit bitmap is the 13th bit
        return None
    digits = f"{(value >> 3) & 0xFFFFFF:06x}"
    return int(digits) if digits.isdigit() else None


def _environment_layout(context: RecordContext) -> Fields:
    return environment_fields(context.variant)


@dataclass(frozen=True)
class _EnvironmentType(RecordType):
    """The environment picks its network's variant from its own network id when none is given."""

    def decode(self, raw: bytes, context: RecordContext | None = None) -> dict[str, Any]:
        if context is None:
            self._check_size(raw)
            context = RecordContext(variant=variant_for_network(network_id_of_environment(raw)))
        return super().decode(raw, context)

    def encode(self, values: Mapping[str, Any], context: RecordContext | None = None) -> bytes:
        if context is None:
            network = values.get("EnvNetworkId") if isinstance(values, Mapping) else None
            known = network if isinstance(network, int) else None
            context = RecordContext(variant=variant_for_network(known))
        return super().encode(values, context)


# --------------------------------------------------------------------------- event


def _event_fields() -> Fields:
    """Intercode event (files 2010 and 2040): date, time, then a 28-field bitmap."""
    return (
        Date("EventDateStamp", doc="date of the event"),
        Time("EventTimeStamp", doc="time of the event"),
        Bitmap(
            None,
            (
                UInt("EventDisplayData", 8, doc="data for display"),
                NetworkId("EventNetworkId", doc="network"),
                UInt("EventCode", 8, doc="high nibble mode, low nibble transition"),
                UInt("EventResult", 8, doc="result code"),
                UInt("EventServiceProvider", 8, doc="operator"),
                UInt("EventNotOkCounter", 8, doc="abnormal events counter"),
                UInt("EventSerialNumber", 24, doc="event serial number"),
                UInt("EventDestination", 16, doc="destination"),
                UInt("EventLocationId", 16, doc="stop or station"),
                UInt("EventLocationGate", 8, doc="gate"),
                UInt("EventDevice", 16, doc="validator"),
                UInt("EventRouteNumber", 16, doc="line"),
                UInt("EventRouteVariant", 8, doc="line variant"),
                UInt("EventJourneyRun", 16, doc="run"),
                UInt("EventVehicleId", 16, doc="vehicle"),
                UInt("EventVehicleClass", 8, doc="vehicle class"),
                UInt("EventLocationType", 5, doc="kind of place"),
                Alpha("EventEmployee", 240, doc="employee code (never fits a 29-byte event)"),
                UInt("EventLocationReference", 16, doc="place reference"),
                UInt("EventJourneyInterchanges", 8, doc="interchanges so far"),
                UInt("EventPeriodJourneys", 16, doc="journeys in the period"),
                UInt("EventTotalJourneys", 16, doc="journeys in total"),
                UInt("EventJourneyDistance", 16, doc="distance"),
                Amount("EventPriceAmount", 16, doc="amount charged"),
                UInt("EventPriceUnit", 16, doc="currency / unit code"),
                UInt("EventContractPointer", 5, doc="contract record used"),
                UInt("EventAuthenticator", 16, doc="security code"),
                Bitmap(
                    "EventData",
                    (
                        Date("EventDataDateFirstStamp", doc="date of the first boarding"),
                        Time("EventDataTimeFirstStamp", doc="time of the first boarding"),
                        UInt("EventDataSimulation", 1, doc="0 normal, 1 degraded mode"),
                        UInt("EventDataTrip", 2, doc="trip section"),
                        UInt("EventDataRouteDirection", 2, doc="direction"),
                    ),
                ),
            ),
            doc="Event bitmap",
        ),
    )


EVENT_FIELDS = _event_fields()


# --------------------------------------------------------------------------- contracts

CONTRACT_LAYOUTS = ("FF", "20", "46", "compact")
LAYOUT_KEY = "_layout"


def tariff_type(tariff: int) -> int:
    """The tariff type byte of a 16-bit tariff: 4 bits exploitation, 8 bits type, 4 bits priority
    (Intercode; Metrodroid takes ``tariff shr 4 and 0xff``)."""
    return (tariff >> 4) & 0xFF


def contract_layout_for_tariff(tariff: int | None) -> str:
    """Which contract layout a contract-list tariff announces; FF when there is no list entry."""
    if tariff is None:
        return "FF"
    kind = tariff_type(tariff)
    if kind == 0xFF:
        return "FF"
    if kind == 0x20:
        return "20"
    if kind == 0x46:
        return "46"
    return "compact"


@cache
def contract_ff_fields(variant: PlumVariant) -> Fields:
    """The generic Intercode contract (tariff type FF): one 20-field bitmap (built once per
    variant, like :func:`environment_fields`)."""
    return (
        Bitmap(
            None,
            (
                NetworkId("ContractNetworkId", doc="network"),
                UInt("ContractProvider", 8, doc="operator"),
                UInt("ContractTariff", 16, doc="tariff (product) code"),
                UInt("ContractSerialNumber", 32, doc="ticket serial number (TCN)"),
                Bitmap(
                    "ContractCustomerInfo",
                    (
                        UInt("ContractCustomerProfile", 6, doc="holder status or discount rate"),
                        UInt("ContractCustomerNumber", 32, doc="customer number"),
                    ),
                ),
                Bitmap(
                    "ContractPassengerInfo",
                    (
                        UInt(
                            "ContractPassengerClass",
                            variant.passenger_class_bits,
                            doc="class of service; width per network (6 or 8 bits)",
                        ),
                        UInt("ContractPassengerTotal", 8, doc="number of passengers"),
                    ),
                ),
                UInt("ContractVehicleClassAllowed", 6, doc="vehicle classes allowed"),
                UInt("ContractPaymentPointer", 32, doc="pointers to payment events"),
                UInt("ContractPayMethod", 11, doc="payment method code"),
                UInt("ContractServices", 16, doc="services allowed"),
                Amount("ContractPriceAmount", 16, doc="price"),
                UInt("ContractPriceUnit", 16, doc="currency code"),
                Bitmap(
                    "ContractRestriction",
                    (
                        Time("ContractRestrictStart", doc="restriction start time"),
                        Time("ContractRestrictEnd", doc="restriction end time"),
                        UInt("ContractRestrictDay", 8, doc="days"),
                        UInt("ContractRestrictTimeCode", 8, doc="time code"),
                        UInt("ContractRestrictCode", 8, doc="restriction code"),
                        UInt("ContractRestrictProduct", 16, doc="product"),
                        UInt("ContractRestrictLocation", 16, doc="place"),
                    ),
                ),
                Bitmap(
                    "ContractValidityInfo",
                    (
                        Date("ContractValidityStartDate", doc="first day of validity"),
                        Time("ContractValidityStartTime", doc="start time"),
                        Date("ContractValidityEndDate", doc="last day of validity"),
                        Time("ContractValidityEndTime", doc="end time"),
                        UInt("ContractValidityDuration", 8, doc="duration"),
                        Date("ContractValidityLimitDate", doc="last day of first use"),
                        Zones("ContractValidityZones", 8, doc="zones allowed"),
                        UInt("ContractValidityJourneys", 16, doc="journeys allowed"),
                        UInt("ContractPeriodJourneys", 16, doc="journeys allowed per period"),
                    ),
                ),
                Bitmap(
                    "ContractJourneyData",
                    (
                        UInt("ContractJourneyOrigin", 16, doc="origin"),
                        UInt("ContractJourneyDestination", 16, doc="destination"),
                        UInt("ContractJourneyRouteNumbers", 16, doc="lines allowed"),
                        UInt("ContractJourneyRouteVariants", 8, doc="line variants"),
                        UInt("ContractJourneyRun", 16, doc="run"),
                        UInt("ContractJourneyVia", 16, doc="via"),
                        UInt("ContractJourneyDistance", 16, doc="distance"),
                        UInt("ContractJourneyInterchanges", 8, doc="interchanges allowed"),
                    ),
                ),
                Bitmap(
                    "ContractSaleData",
                    (
                        Date("ContractSaleDate", doc="sale date"),
                        Time("ContractSaleTime", doc="sale time"),
                        UInt("ContractSaleAgent", 8, doc="selling operator"),
                        UInt("ContractSaleDevice", 16, doc="selling device"),
                    ),
                ),
                UInt("ContractStatus", 8, doc="contract status"),
                UInt("ContractLoyaltyPoints", 16, doc="loyalty points"),
                UInt("ContractAuthenticator", 16, doc="integrity code"),
                Rest("ContractData", doc="network data of unspecified length"),
            ),
            doc="Contract bitmap",
        ),
    )


def _compact(extra: en1545.Field) -> Fields:
    """The compact contract's common part (Metrodroid ``IntercodeSubscription.commonFormat``)."""
    return (
        Bitmap(
            None,
            (
                UInt("ContractProvider", 8, doc="operator"),
                UInt("ContractTariff", 16, doc="tariff (product) code"),
                UInt("ContractSerialNumber", 32, doc="ticket serial number"),
                UInt("ContractPassengerClass", 8, doc="class of service"),
                Bitmap(
                    "ContractValidityInfo",
                    (
                        Date("ContractValidityStartDate", doc="first day of validity"),
                        Date("ContractValidityEndDate", doc="last day of validity"),
                    ),
                ),
                UInt("ContractStatus", 8, doc="contract status"),
                extra,
            ),
            doc="compact contract bitmap",
        ),
    )


def _compact_data_fields() -> tuple[en1545.Field, ...]:
    """The ``ContractData`` bitmap entries shared by tariff types 20 and 46 (Metrodroid)."""
    return (
        Group(
            None,
            (
                UInt("ContractOrigin1", 16, doc="origin"),
                UInt("ContractVia1", 16, doc="via"),
                UInt("ContractDestination1", 16, doc="destination"),
            ),
        ),
        Group(
            None,
            (
                UInt("ContractOrigin2", 16, doc="second origin"),
                UInt("ContractDestination2", 16, doc="second destination"),
            ),
        ),
        Zones("ContractZones", 16, doc="zones allowed"),
        Group(
            None,
            (
                Date("ContractSaleDate", doc="sale date"),
                UInt("ContractSaleDevice", 16, doc="selling device"),
                UInt("ContractSaleAgent", 8, doc="selling operator"),
            ),
        ),
        Group(
            None,
            (
                UInt("ContractPayMethod", 11, doc="payment method code"),
                Amount("ContractPriceAmount", 16, doc="price"),
                UInt("ContractReceiptDelivered", 1, doc="receipt given"),
            ),
        ),
        UInt("ContractPassengerTotal", 6, doc="number of passengers"),
        Group(
            None,
            (
                Date("ContractEndPeriod", doc="end of the current period"),
                UInt("ContractSoldPeriod", 6, doc="periods sold"),
            ),
        ),
        Group(
            None,
            (
                UInt("ContractSold", 8, doc="units sold (journeys of a carnet)"),
                UInt("ContractDebitSold", 5, doc="units debited per journey"),
            ),
        ),
        UInt("ContractVehicleClassAllowed", 4, doc="vehicle classes allowed"),
        UInt("ContractLinkedContract", 5, doc="linked contract record"),
    )


CONTRACT_20_FIELDS = _compact(Bitmap("ContractData", _compact_data_fields()))
CONTRACT_46_FIELDS = _compact(
    Bitmap(
        "ContractData",
        (
            *_compact_data_fields(),
            Time("ContractValidityStartTime", doc="start time"),
            Time("ContractValidityEndTime", doc="end time"),
            Date("ContractDataEndInhibitionDate", doc="end of inhibition"),
            Date("ContractDataValidityLimitDate", doc="last day of first use"),
            UInt("ContractDataGeoLine", 28, doc="geographic line"),
            UInt("ContractJourneys", 16, doc="journeys"),
            UInt("ContractDataSaleSecureDevice", 32, doc="secure device of the sale"),
        ),
    )
)
CONTRACT_COMPACT_FIELDS = _compact(Rest("ContractData", doc="data of an unlisted tariff type"))


def contract_fields(layout: str, variant: PlumVariant) -> Fields:
    """The field list of a contract layout (``"FF"``, ``"20"``, ``"46"`` or ``"compact"``)."""
    if layout == "FF":
        return contract_ff_fields(variant)
    if layout == "20":
        return CONTRACT_20_FIELDS
    if layout == "46":
        return CONTRACT_46_FIELDS
    if layout == "compact":
        return CONTRACT_COMPACT_FIELDS
    raise SchemaError(
        f"unknown contract layout {layout!r} (known: {', '.join(CONTRACT_LAYOUTS)})",
        field=f"plum.contract.{LAYOUT_KEY}",
    )


@dataclass(frozen=True)
class _ContractType(RecordType):
    """A contract: its layout comes from the tariff of its contract-list entry.

    The decoded dict names the layout under ``"_layout"``; encoding uses that key, else the
    context's tariff, else FF.
    """

    def decode(self, raw: bytes, context: RecordContext | None = None) -> dict[str, Any]:
        context = context or RecordContext()
        self._check_size(raw)
        layout = contract_layout_for_tariff(context.tariff)
        fields = contract_fields(layout, context.variant)
        return {LAYOUT_KEY: layout, **en1545.decode(fields, raw, where=f"{self.name}.")}

    def encode(self, values: Mapping[str, Any], context: RecordContext | None = None) -> bytes:
        context = context or RecordContext()
        if not isinstance(values, Mapping):
            raise SchemaError("expected an object", field=self.name)
        announced = contract_layout_for_tariff(context.tariff)
        layout = values.get(LAYOUT_KEY, announced)
        if context.tariff is not None and layout != announced:
            raise SchemaError(
                f"layout {layout!r} but the contract list announces tariff "
                f"0x{context.tariff:04X} ({announced})",
                field=f"{self.name}.{LAYOUT_KEY}",
            )
        fields = contract_fields(str(layout), context.variant)
        body = {k: v for k, v in values.items() if k != LAYOUT_KEY}
        return en1545.encode(fields, body, size=self.size, where=f"{self.name}.")


def _contract_layout(context: RecordContext) -> Fields:
    return contract_fields(contract_layout_for_tariff(context.tariff), context.variant)


# --------------------------------------------------------------------------- list, counters

CONTRACT_LIST_FIELDS: Fields = (
    Repeat(
        "BestContracts",
        4,
        Bitmap(
            None,
            (
                NetworkId("BestContractNetworkId", doc="network"),
                UInt("BestContractTariff", 16, doc="4 bits exploitation, 8 type, 4 priority"),
                UInt("BestContractPointer", 5, doc="contract record number (1-based)"),
            ),
        ),
        doc="contract list entries",
    ),
)

COUNTER_FIELDS: Fields = tuple(
    UInt(f"counter_{i}", 24, doc=f"counter of contract record {i}" if i <= 4 else "spare counter")
    for i in range(1, COUNTERS_PER_RECORD + 1)
)


# --------------------------------------------------------------------------- record types

# The two variants between them give every width a layout can take (2 or 4, 6 or 8 bits).
for _variant in (PlumVariant(), PlumVariant(2, 6)):
    en1545.check_layout(environment_fields(_variant), "plum.environment.")
    for _layout in CONTRACT_LAYOUTS:
        en1545.check_layout(contract_fields(_layout, _variant), "plum.contract.")

RECORD_TYPES: tuple[RecordType, ...] = (
    _EnvironmentType(
        "plum.environment",
        "Environnement et porteur (Environment + Holder)",
        _environment_layout,
    ),
    fixed("plum.event", "Événement de validation (Event)", EVENT_FIELDS),
    _ContractType("plum.contract", "Contrat (Contract)", _contract_layout),
    fixed("plum.contract_list", "Liste des contrats (Contract list)", CONTRACT_LIST_FIELDS),
    fixed("plum.counters", "Compteurs (Counters)", COUNTER_FIELDS),
    fixed(
        "plum.contract_counter",
        "Compteur d'un contrat (Counter, simulated file)",
        (UInt("counter", 8 * COUNTER_SIZE, doc="the contract's counter, shared with 2069"),),
        size=COUNTER_SIZE,
    ),
    fixed("plum.special_event", "Événement spécial (Special event)", EVENT_FIELDS),
)
