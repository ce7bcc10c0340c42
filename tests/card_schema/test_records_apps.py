"""Cursus, Mes droits pour l'emploi and Ma région numérique records: goldens and round trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schema_strategies import raw_for, record, values_for

from card_schema import en1545
from card_schema.errors import SchemaError
from card_schema.records import RECORD_TYPES, decode_record, encode_record, record_type

OWN_TYPES = sorted(n for n in RECORD_TYPES if not n.startswith("plum."))
NET = "0010 0101 0000 0000 0000 0000"  # network id 250000


def test_golden_student() -> None:
    values = {
        "version": 1,
        "school_uai": "0801234G",
        "level": "premiere",
        "boarding": "half_board",
        "valid_from": "2026-09-01",
        "valid_until": None,
        "school_transport": "free",
        "transport_network_id": 250000,
        "transport_zones": [1, 2],
    }
    bits = (
        "000001"  # version 1 (6)
        "0000 1000 0000 0001 0010 0011 0100"  # UAI digits 0801234 in BCD (28)
        "00111"  # UAI letter G = 7 (5)
        "00110"  # level: premiere = 6 (5)
        "01"  # boarding: half_board = 1 (2)
        "10101001010011"  # valid_from 2026-09-01 = 10835 days (14)
        "00000000000000"  # valid_until: none (14)
        "01"  # school_transport: free = 1 (2)
        + NET  # transport_network_id (24)
        + "0000000000000011"  # transport_zones 1 and 2 (16)
    )
    assert encode_record("cursus.student", values) == record(bits)
    assert decode_record("cursus.student", record(bits)) == values


def test_golden_aid_counters() -> None:
    values = {"books_equipment": 5500, "sport_leisure": 3000, "canteen": 12160}
    values |= {f"counter_{i}": 0 for i in range(4, 9)} | {"last_action": 0x000102}
    # counter 9 (last_action) = 0x000102
    # three 3-byte counters: 5500 = 0x00157C, 3000 = 0x000BB8, 12160 = 0x002F80
    raw = bytes.fromhex("00157C000BB8002F80") + bytes(15) + bytes.fromhex("000102") + bytes(2)
    assert encode_record("cursus.aid_counters", values) == raw
    assert decode_record("cursus.aid_counters", raw) == values


def test_golden_consultation() -> None:
    values = {
        "consulted_at": "1997-01-02T00:01",
        "partner": "mission_locale",
        "partner_site": 1,
        "read": ["situation", "right_1"],
        "terminal_id": 5,
    }
    bits = (
        "00000000000001 00000000001"  # consulted_at: day 1, minute 1 (14 + 11)
        "0010"  # partner: mission_locale = 2 (4)
        "0000000000000001"  # partner_site (16)
        "00000011"  # read: bit0 situation, bit1 right_1 (8)
        "0000000000000101"  # terminal_id (16)
    )
    assert encode_record("employment.consultation", values) == record(bits)
    assert decode_record("employment.consultation", record(bits)) == values


def test_sv_debit_log_negative_balance() -> None:
    values = {
        "amount": -60,
        "date": "1997-01-02",
        "time": "00:00",
        "kvc": 1,
        "sam_id": 0x0C0FFEE0,
        "sam_tnum": 0x000102,
        "balance": -40,
        "sv_tnum": 13,
    }
    raw = encode_record("wallet.sv_debit_log", values)
    # Calypso's debit log (Keyple SvDebitLogRecord offsets): amount (2) date (2) time (2) KVC (1)
    # SAM id (4) SAM tnum (3) balance (3) SV tnum (2) = 19 bytes, zeros to 29; -60 is FFC4 and
    # -40 is FFFFD8 in two's complement
    assert raw == bytes.fromhex("FFC400010000010C0FFEE0000102FFFFD8000D") + bytes(10)
    assert decode_record("wallet.sv_debit_log", raw) == values


def test_sv_load_log_layout() -> None:
    values = {
        "date": "1997-01-02",
        "free_1": 0xAA,
        "kvc": 2,
        "free_2": 0xBB,
        "balance": 3500,
        "amount": 2500,
        "time": "00:01",
        "sam_id": 0x5A000001,
        "sam_tnum": 9,
        "sv_tnum": 4,
    }
    raw = encode_record("wallet.sv_load_log", values)
    # Keyple SvLoadLogRecord offsets: date 0, free 2, KVC 3, free 4, balance 5, amount 8,
    # time 11, SAM id 13, SAM tnum 17, SV tnum 20 (22 bytes, zeros to 29)
    expected = "0001AA02BB000DAC0009C400015A0000010000090004"
    assert raw == bytes.fromhex(expected) + bytes(7)
    assert decode_record("wallet.sv_load_log", raw) == values


@pytest.mark.parametrize(
    ("type_name", "values", "field", "message"),
    [
        ("cursus.student", {"school_uai": "801234G"}, "cursus.student.school_uai", "7 digits"),
        ("employment.right", {"right": "lottery"}, "employment.right.right", "unknown value"),
        ("wallet.services", {"enabled": ["teleport"]}, "wallet.services.enabled", "unknown flag"),
        ("cursus.canteen_log", {"aid_amount": 70000}, "cursus.canteen_log.aid_amount", "16 bits"),
    ],
)
def test_errors_name_the_field(
    type_name: str, values: dict[str, Any], field: str, message: str
) -> None:
    base = decode_record(type_name, bytes(29))
    with pytest.raises(SchemaError, match=message) as err:
        encode_record(type_name, base | values)
    assert err.value.field == field


@pytest.mark.parametrize("type_name", OWN_TYPES)
def test_round_trips(type_name: str) -> None:
    fields = record_type(type_name).fields()

    @settings(max_examples=150, deadline=None)
    @given(
        raw=raw_for(fields), values=values_for(fields), noise=st.binary(min_size=29, max_size=29)
    )
    def check(raw: bytes, values: dict[str, Any], noise: bytes) -> None:
        # Fixed layouts: any 29 bytes at all is a record they can read back bit for bit.
        for sample in (raw, noise):
            assert encode_record(type_name, decode_record(type_name, sample)) == sample
        assert decode_record(type_name, encode_record(type_name, values)) == values

    check()


@pytest.mark.parametrize("type_name", OWN_TYPES)
def test_fixed_records_fit_29_bytes(type_name: str) -> None:
    fields = record_type(type_name).fields()
    full = decode_record(type_name, bytes(29))
    assert en1545.bit_length(fields, full) <= 232
