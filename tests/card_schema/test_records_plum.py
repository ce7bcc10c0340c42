"""PLUM (Intercode) records: hand-worked golden records and round trips.

Each golden record spells its bits out field by field, MSB first, as Intercode packs them (the
widths are those of docs/card-layout.md). Dates are days since 1997-01-01, worked out by hand:
2026-01-01 is 29 x 365 + 7 leap days = 10592, so 2026-09-01 = 10592 + 243 = 10835,
2026-11-01 = 10592 + 304 = 10896, 2026-11-27 = 10922, 2026-11-30 = 10925; 2027-08-31 = 10957 +
242 = 11199; 2031-08-31 = 12418 + 242 = 12660.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from schema_strategies import raw_for, record, values_for

from card_schema.errors import SchemaError
from card_schema.records import (
    DEFAULT_VARIANT,
    NAMED_VARIANTS,
    NETWORK_VARIANTS,
    PASSENGER_CLASS_8BIT,
    PlumVariant,
    decode_record,
    encode_record,
    record_type,
)
from card_schema.records.base import RecordContext
from card_schema.records.plum import (
    EVENT_FIELDS,
    contract_fields,
    contract_layout_for_tariff,
    environment_fields,
    network_id_of_environment,
)

NET = "0010 0101 0000 0000 0000 0000"  # network id 250000: BCD 250 (France) + 000


def golden(type_name: str, values: dict[str, Any], bits: str, **context: Any) -> None:
    raw = record(bits)
    assert encode_record(type_name, values, **context) == raw
    assert decode_record(type_name, raw, **context) == values


# ---------------------------------------------------------------- environment + holder

ENVIRONMENT = {
    "EnvApplicationVersionNumber": 1,
    "EnvNetworkId": 250000,
    "EnvApplicationValidityEndDate": "2031-08-31",
    "EnvData": {"EnvDataCardStatus": 1},
    "HolderProfiles": [
        {
            "HolderProfileNetworkId": 250000,
            "HolderProfileNumber": 1,
            "HolderProfileDate": "2027-08-31",
        }
    ],
    "HolderData": {"HolderDataCardStatus": 2, "HolderDataProfileStartDate1": "2026-09-01"},
}


def environment_bits(profile_counter: str) -> str:
    return (
        "000001"  # EnvApplicationVersionNumber = 1 (6 bits)
        "1000101"  # Env bitmap (7): bit0 NetworkId, bit2 ValidityEndDate, bit6 EnvData
        + NET  # EnvNetworkId (24)
        + "11000101110100"  # EnvApplicationValidityEndDate 2031-08-31 = 12660 (14)
        "01"  # EnvData bitmap (2): bit0 EnvDataCardStatus
        "1"  # EnvDataCardStatus = 1 (1)
        "11000000"  # Holder bitmap (8): bit6 HolderProfiles, bit7 HolderData
        + profile_counter  # HolderProfiles count = 1 (4 bits, or 2 in the Metrodroid variant)
        + "111"  # profile bitmap (3): network, number, date
        + NET  # HolderProfileNetworkId (24)
        + "00000001"  # HolderProfileNumber = 1, scolaire (8)
        "10101110111111"  # HolderProfileDate 2027-08-31 = 11199 (14)
        "000100000001"  # HolderData bitmap (12): bit0 CardStatus, bit8 ProfileStartDate1
        "0010"  # HolderDataCardStatus = 2 (4)
        "10101001010011"  # HolderDataProfileStartDate1 2026-09-01 = 10835 (14)
    )


def test_golden_environment_default_variant() -> None:
    golden("plum.environment", ENVIRONMENT, environment_bits("0001"))


def test_golden_environment_two_bit_profile_counter() -> None:
    golden("plum.environment", ENVIRONMENT, environment_bits("01"), variant=PlumVariant(2, 8))


def test_environment_network_id_is_read_before_decoding() -> None:
    raw = encode_record("plum.environment", ENVIRONMENT)
    assert network_id_of_environment(raw) == 250000
    assert network_id_of_environment(record("000001 0000000")) is None


# ---------------------------------------------------------------- event and special event

EVENT = {
    "EventDateStamp": "2026-11-27",
    "EventTimeStamp": "07:42",
    "EventNetworkId": 250000,
    "EventCode": 0x11,
    "EventContractPointer": 1,
}
EVENT_BITS = (
    "10101010101010"  # EventDateStamp 2026-11-27 = 10922 = 0x2AAA (14)
    "00111001110"  # EventTimeStamp 07:42 = 462 minutes (11)
    "001"
    + "0" * 22
    + "110"  # bitmap (28): bit1 NetworkId, bit2 EventCode, bit25 ContractPointer
    + NET  # EventNetworkId (24)
    + "00010001"  # EventCode 0x11: urban bus, entry (8)
    "00001"  # EventContractPointer = 1 (5)
)


def test_golden_event() -> None:
    golden("plum.event", EVENT, EVENT_BITS)


def test_golden_special_event() -> None:
    values = {"EventDateStamp": "2026-11-27", "EventTimeStamp": "00:00", "EventResult": 0x20}
    bits = (
        "10101010101010"  # EventDateStamp 2026-11-27 (14)
        "00000000000"  # EventTimeStamp 00:00 (11)
        + "0"
        * 24
        + "1000"  # bitmap (28): bit3 EventResult
        "00100000"  # EventResult 0x20 (8)
    )
    golden("plum.special_event", values, bits)


def test_event_employee_never_fits_a_record() -> None:
    with pytest.raises(SchemaError, match="record is full") as err:
        encode_record("plum.event", {**EVENT, "EventEmployee": "X"})
    assert err.value.field == "plum.event.EventEmployee"


def test_event_layout_carries_no_holder_or_social_field() -> None:
    """Privacy rule: nothing about the holder, a profile or employment in a transit event."""
    paths = [row.path.strip() for row in record_type("plum.event").rows()]
    suspicious = [p for p in paths if re.search("holder|profile|social|birth|right|job", p, re.I)]
    assert suspicious == []
    # EventEmployee is Intercode's operator-staff code, not the holder's employment.
    assert "EventEmployee" in paths


# ---------------------------------------------------------------- contracts

MONTHLY_PASS = {
    "_layout": "FF",
    "ContractNetworkId": 250000,
    "ContractTariff": 0x2101,
    "ContractValidityInfo": {
        "ContractValidityStartDate": "2026-11-01",
        "ContractValidityEndDate": "2026-11-30",
        "ContractValidityZones": [1, 2],
    },
    "ContractStatus": 1,
}
MONTHLY_PASS_BITS = (
    "0001001"
    + "0000000000"
    + "101"  # bitmap (20): bit0 NetworkId, bit2 Tariff, bit13 Validity, bit16 Status
    + NET  # ContractNetworkId (24)
    + "0010 0001 0000 0001"  # ContractTariff 0x2101 (16)
    "001000101"  # ContractValidityInfo bitmap (9): bit0 StartDate, bit2 EndDate, bit6 Zones
    "10101010010000"  # ContractValidityStartDate 2026-11-01 = 10896 (14)
    "10101010101101"  # ContractValidityEndDate 2026-11-30 = 10925 (14)
    "00000011"  # ContractValidityZones: zones 1 and 2 (8)
    "00000001"  # ContractStatus = 1 (8)
)


def test_golden_contract_ff() -> None:
    golden("plum.contract", MONTHLY_PASS, MONTHLY_PASS_BITS, tariff=0x0FF1)
    golden("plum.contract", MONTHLY_PASS, MONTHLY_PASS_BITS)  # no list entry: FF


@pytest.mark.parametrize(
    ("variant", "class_bits"), [(PlumVariant(4, 8), "00000010"), (PlumVariant(4, 6), "000010")]
)
def test_golden_contract_passenger_class_variant(variant: PlumVariant, class_bits: str) -> None:
    values = {"_layout": "FF", "ContractPassengerInfo": {"ContractPassengerClass": 2}}
    bits = (
        "00000000000000100000"  # bitmap (20): bit5 ContractPassengerInfo
        "01"  # passenger bitmap (2): bit0 ContractPassengerClass
        + class_bits  # ContractPassengerClass = 2 (8 bits, or 6 in the cardpeek variant)
    )
    golden("plum.contract", values, bits, variant=variant)


def test_passenger_class_is_6_bits_by_default_8_by_name() -> None:
    values = {"_layout": "FF", "ContractPassengerInfo": {"ContractPassengerClass": 2}}
    head = "0000000000000010000001"  # bitmap: ContractPassengerInfo; passenger bitmap: class
    golden("plum.contract", values, head + "000010")  # no variant: the field readers' 6 bits
    assert DEFAULT_VARIANT.passenger_class_bits == 6
    golden("plum.contract", values, head + "00000010", variant=NAMED_VARIANTS["passenger-class-8"])
    assert NAMED_VARIANTS["passenger-class-8"] is PASSENGER_CLASS_8BIT
    assert NETWORK_VARIANTS[250000] == NETWORK_VARIANTS[250149] == DEFAULT_VARIANT


def test_passenger_class_beyond_6_bits_is_refused_by_default() -> None:
    values = {"_layout": "FF", "ContractPassengerInfo": {"ContractPassengerClass": 64}}
    with pytest.raises(SchemaError):
        encode_record("plum.contract", values)
    raw = encode_record("plum.contract", values, variant=PASSENGER_CLASS_8BIT)
    decoded = decode_record("plum.contract", raw, variant=PASSENGER_CLASS_8BIT)
    assert decoded["ContractPassengerInfo"]["ContractPassengerClass"] == 64


CARNET = {
    "_layout": "20",
    "ContractTariff": 0x3201,
    "ContractStatus": 1,
    "ContractData": {"ContractSold": 10, "ContractDebitSold": 1},
}
CARNET_BITS = (
    "1100010"  # compact bitmap (7): bit1 Tariff, bit5 Status, bit6 ContractData
    "0011 0010 0000 0001"  # ContractTariff 0x3201 (16)
    "00000001"  # ContractStatus = 1 (8)
    "0010000000"  # ContractData bitmap (10): bit7 the Sold group
    "00001010"  # ContractSold = 10 journeys (8)
    "00001"  # ContractDebitSold = 1 per journey (5)
)


def test_golden_contract_compact_20() -> None:
    golden("plum.contract", CARNET, CARNET_BITS, tariff=0x0202)


def test_golden_contract_unlisted_tariff_type_keeps_its_data() -> None:
    values = {"_layout": "compact", "ContractStatus": 3, "ContractData": "1011" + "0" * 213}
    bits = (
        "1100000"  # compact bitmap (7): bit5 Status, bit6 ContractData (unknown length)
        "00000011"  # ContractStatus = 3 (8)
        "1011"  # ContractData: every bit left (217)
    )
    golden("plum.contract", values, bits, tariff=0x0770)


@pytest.mark.parametrize(
    ("tariff", "layout"),
    [
        (None, "FF"),
        (0x0FF0, "FF"),
        (0x1FF3, "FF"),
        (0x0200, "20"),
        (0x0461, "46"),
        (0x0500, "compact"),
    ],
)
def test_layout_follows_the_tariff_type(tariff: int | None, layout: str) -> None:
    assert contract_layout_for_tariff(tariff) == layout


def test_contract_layout_must_match_the_list() -> None:
    with pytest.raises(SchemaError, match="contract list announces") as err:
        encode_record("plum.contract", MONTHLY_PASS, tariff=0x0202)
    assert err.value.field == "plum.contract._layout"


def test_unknown_contract_layout() -> None:
    with pytest.raises(SchemaError, match="unknown contract layout"):
        encode_record("plum.contract", {"_layout": "99"})


# ---------------------------------------------------------------- contract list and counters

CONTRACT_LIST = {
    "BestContracts": [
        {"BestContractNetworkId": 250000, "BestContractTariff": 0x0FF1, "BestContractPointer": 1},
        {"BestContractNetworkId": 250000, "BestContractTariff": 0x0202, "BestContractPointer": 2},
    ]
}
CONTRACT_LIST_BITS = (
    "0010"  # BestContracts count = 2 (4)
    "111"
    + NET
    + "0000 1111 1111 0001"
    + "00001"  # entry 1: bitmap, network, tariff 0x0FF1, pointer 1
    "111"
    + NET
    + "0000 0010 0000 0010"
    + "00010"  # entry 2: bitmap, network, tariff 0x0202, pointer 2
)


def test_golden_contract_list() -> None:
    golden("plum.contract_list", CONTRACT_LIST, CONTRACT_LIST_BITS)


def test_golden_counters_keep_spare_bytes() -> None:
    values = {f"counter_{i}": 0 for i in range(1, 10)}
    values |= {"counter_2": 7, "counter_9": 0xABCDEF, "_tail": "0000000000000001"}
    raw = bytes.fromhex("000000000007" + "000000" * 6 + "abcdef0001")
    assert encode_record("plum.counters", values) == raw
    assert decode_record("plum.counters", raw) == values


def test_wrong_record_length() -> None:
    with pytest.raises(SchemaError, match="29 bytes, got 28"):
        decode_record("plum.event", bytes(28))


def test_unknown_record_type() -> None:
    with pytest.raises(SchemaError, match=re.escape("unknown record type 'plum.nope'")):
        decode_record("plum.nope", bytes(29))


# ---------------------------------------------------------------- round trips

VARIANTS = [PlumVariant(4, 8), PlumVariant(2, 6)]
CONTRACT_CASES = [("FF", 0x0FF0), ("20", 0x0200), ("46", 0x0460), ("compact", 0x0500)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_environment_round_trips(variant: PlumVariant) -> None:
    fields = environment_fields(variant)

    @settings(max_examples=150, deadline=None)
    @given(raw=raw_for(fields), values=values_for(fields))
    def check(raw: bytes, values: dict[str, Any]) -> None:
        decoded = decode_record("plum.environment", raw, variant=variant)
        assert encode_record("plum.environment", decoded, variant=variant) == raw
        again = encode_record("plum.environment", values, variant=variant)
        assert decode_record("plum.environment", again, variant=variant) == values

    check()


@settings(max_examples=200, deadline=None)
@given(raw=raw_for(EVENT_FIELDS))
def test_event_raw_round_trip(raw: bytes) -> None:
    for name in ("plum.event", "plum.special_event"):
        assert encode_record(name, decode_record(name, raw)) == raw


@settings(max_examples=200, deadline=None)
@given(values=values_for(EVENT_FIELDS))
def test_event_values_round_trip(values: dict[str, Any]) -> None:
    assert decode_record("plum.event", encode_record("plum.event", values)) == values


@pytest.mark.parametrize(("layout", "tariff"), CONTRACT_CASES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_contract_round_trips(layout: str, tariff: int, variant: PlumVariant) -> None:
    fields = contract_fields(layout, variant)

    @settings(max_examples=100, deadline=None)
    @given(raw=raw_for(fields), values=values_for(fields))
    def check(raw: bytes, values: dict[str, Any]) -> None:
        decoded = decode_record("plum.contract", raw, variant=variant, tariff=tariff)
        assert decoded["_layout"] == layout
        assert encode_record("plum.contract", decoded, variant=variant, tariff=tariff) == raw
        values = {"_layout": layout, **values}
        again = encode_record("plum.contract", values, variant=variant, tariff=tariff)
        assert decode_record("plum.contract", again, variant=variant, tariff=tariff) == values

    check()


@pytest.mark.parametrize("name", ["plum.contract_list", "plum.counters"])
def test_list_and_counter_round_trips(name: str) -> None:
    fields = record_type(name).fields(RecordContext())

    @settings(max_examples=150, deadline=None)
    @given(raw=raw_for(fields), values=values_for(fields))
    def check(raw: bytes, values: dict[str, Any]) -> None:
        assert encode_record(name, decode_record(name, raw)) == raw
        assert decode_record(name, encode_record(name, values)) == values

    check()
