"""The EN 1545 engine: each field kind, bitmaps, repeats, unknown bits, errors.

Expected bits are written out by hand next to each case (MSB first, as on the card).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schema_strategies import raw_for, record, values_for

from card_schema import en1545
from card_schema.en1545 import (
    Alpha,
    Amount,
    Bcd,
    BcdDate,
    Bitmap,
    Bool,
    Date,
    DateTime,
    Enum,
    Flags,
    Group,
    NetworkId,
    Repeat,
    Rest,
    Time,
    UInt,
    Zones,
)
from card_schema.errors import SchemaError


def one(field: en1545.Field, value: Any) -> bytes:
    return en1545.encode((field,), {field.field_keys()[0]: value})


def back(field: en1545.Field, raw: bytes) -> Any:
    return en1545.decode((field,), raw)[field.field_keys()[0]]


# ---------------------------------------------------------------- scalars, hand-checked bits


@pytest.mark.parametrize(
    ("field", "value", "bits"),
    [
        (UInt("n", 5), 5, "00101"),
        (UInt("n", 12), 0xABC, "1010 1011 1100"),
        (Bool("b"), True, "1"),
        (Date("d"), "1997-01-02", "00000000000001"),  # day 1 after the epoch
        (Date("d"), "2026-11-27", "10101010101010"),  # 10922 days = 0x2AAA
        (Date("d"), None, "00000000000000"),
        (Time("t"), "07:42", "00111001110"),  # 462 minutes
        (Time("t"), "23:59", "10110011111"),  # 1439 minutes
        (DateTime("dt"), "1997-01-02T00:01", "00000000000001 00000000001"),
        (DateTime("dt"), None, "0" * 25),
        (BcdDate("b"), "2009-03-15", "0010 0000 0000 1001 0000 0011 0001 0101"),
        (BcdDate("b"), None, "0" * 32),
        (Bcd("c", 16), "0801", "0000 1000 0000 0001"),
        (NetworkId("n"), 250000, "0010 0101 0000 0000 0000 0000"),
        (NetworkId("n"), 250149, "0010 0101 0000 0001 0100 1001"),
        (Alpha("s", 15), "AB", "00001 00010 00000"),  # padded with spaces (0)
        (Alpha("s", 15), "Z Y", "11010 00000 11001"),
        (Amount("a", 16), 1450, "0000 0101 1010 1010"),
        (Amount("a", 8, signed=True), -1, "1111 1111"),
        (Amount("a", 8, signed=True), -128, "1000 0000"),
        (Enum("e", 3, values={0: "none", 5: "five"}), "five", "101"),
        (Flags("f", 4, names={0: "a", 2: "c"}), ["a", "c"], "0101"),
        (Flags("f", 4, names={0: "a"}), ["a", 3], "1001"),
        (Zones("z", 8), [1, 2], "00000011"),
        (Zones("z", 8), [8], "10000000"),
    ],
)
def test_scalar_bits(field: en1545.Scalar, value: Any, bits: str) -> None:
    raw = one(field, value)
    assert raw == record(bits)
    assert back(field, raw) == value


@pytest.mark.parametrize(
    ("field", "bits", "shown"),
    [
        (Time("t"), "10111011100", {"raw": 1500}),  # 25:00 is no time of day
        (DateTime("dt"), "00000000000000 00000000001", {"raw": 1}),  # a time without a date
        (NetworkId("n"), "0010 0101 1010 0000 0000 0000", {"raw": 0x25A000}),  # not BCD
        (BcdDate("b"), "0010 0000 0000 1001 0001 0011 0000 0001", {"raw": 0x20091301}),
        (Bcd("c", 4), "1111", {"raw": 15}),
        (Enum("e", 3, values={0: "none"}), "110", {"raw": 6}),
        (Alpha("s", 10), "11011 11111", "[_"),  # codes 27 and 31 have no letter
    ],
)
def test_values_without_usual_form_survive(field: en1545.Scalar, bits: str, shown: Any) -> None:
    raw = record(bits)
    assert back(field, raw) == shown
    assert one(field, shown) == raw


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (UInt("n", 4), 16, "does not fit in 4 bits"),
        (UInt("n", 4), -1, "does not fit"),
        (UInt("n", 4), "3", "expected an integer"),
        (UInt("n", 4), True, "expected an integer"),
        (Amount("a", 8, signed=True), 128, "does not fit in 8 signed bits"),
        (Date("d"), "1997-01-01", "not after 1997-01-01"),
        (Date("d"), "2041-11-10", "does not fit in 14 bits"),  # day 16384
        (Date("d"), "27/11/2026", "not a date"),
        (Time("t"), "24:00", "not a time of day"),
        (Time("t"), "7:42", "expected a time HH:MM"),
        (Alpha("s", 10), "ABC", "longer than 2 characters"),
        (Alpha("s", 10), "é", "not in the 5-bit alphabet"),
        (Alpha("s", 10), "a", "not in the 5-bit alphabet"),
        (NetworkId("n"), 1_000_000, "6-digit network id"),
        (Enum("e", 3, values={0: "none"}), "nothing", "unknown value 'nothing'"),
        (Flags("f", 4, names={0: "a"}), ["b"], "unknown flag 'b'"),
        (Flags("f", 4, names={0: "a"}), [4], "unknown flag 4"),
        (Zones("z", 8), [0], "zone 0 outside 1..8"),
        (UInt("n", 4), {"raw": 16}, "does not fit in 4 bits"),
        (UInt("n", 4), {"raw": 1, "x": 2}, "expected"),
    ],
)
def test_bad_values_raise_schema_error_naming_the_field(
    field: en1545.Scalar, value: Any, message: str
) -> None:
    with pytest.raises(SchemaError, match=message) as err:
        one(field, value)
    assert err.value.field == field.name


# ---------------------------------------------------------------- properties of the scalar kinds


@given(
    st.dates(
        min_value=dt.date(1997, 1, 2), max_value=dt.date(1997, 1, 1) + dt.timedelta(days=16383)
    )
)
def test_date_round_trip(day: dt.date) -> None:
    raw = one(Date("d"), day.isoformat())
    assert int.from_bytes(raw[:2], "big") >> 2 == (day - dt.date(1997, 1, 1)).days
    assert back(Date("d"), raw) == day.isoformat()


@given(st.times())
def test_time_round_trip(moment: dt.time) -> None:
    text = moment.strftime("%H:%M")
    raw = one(Time("t"), text)
    assert int.from_bytes(raw[:2], "big") >> 5 == moment.hour * 60 + moment.minute
    assert back(Time("t"), raw) == text


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ", max_size=17).map(str.rstrip))
def test_alpha_round_trip(text: str) -> None:
    assert back(Alpha("s", 85), one(Alpha("s", 85), text)) == text


@given(st.integers(-(1 << 23), (1 << 23) - 1))
def test_signed_amount_round_trip(cents: int) -> None:
    assert back(Amount("a", 24, signed=True), one(Amount("a", 24, signed=True), cents)) == cents


@given(st.integers(0, 999), st.integers(0, 999))
def test_network_id_is_bcd_of_country_and_network(country: int, network: int) -> None:
    raw = one(NetworkId("n"), country * 1000 + network)
    assert raw[:3].hex() == f"{country:03d}{network:03d}"


# ---------------------------------------------------------------- structures

BITMAP = (
    Bitmap(
        None,
        (
            UInt("first", 4),
            UInt("second", 8),
            Bitmap("inner", (UInt("x", 3), UInt("y", 2))),
            UInt("fourth", 2),
        ),
    ),
)


def test_bitmap_lsb_is_the_first_field() -> None:
    raw = en1545.encode(BITMAP, {"first": 0xF, "fourth": 1})
    # mask 4 bits, LSB = "first": fields 0 and 3 -> 1001; then first=1111, fourth=01
    assert raw == record("1001 1111 01")
    assert en1545.decode(BITMAP, raw) == {"first": 15, "fourth": 1}


def test_nested_bitmap() -> None:
    values = {"second": 0x81, "inner": {"y": 2}}
    raw = en1545.encode(BITMAP, values)
    # outer mask 0110 (second, inner); second=10000001; inner mask 10 (y only); y=10
    assert raw == record("0110 10000001 10 10")
    assert en1545.decode(BITMAP, raw) == values


def test_present_empty_nested_bitmap_differs_from_absent() -> None:
    assert en1545.encode(BITMAP, {"inner": {}}) == record("0100 00")
    assert en1545.decode(BITMAP, record("0100 00")) == {"inner": {}}
    assert en1545.decode(BITMAP, record("0000")) == {}


REPEAT = (Repeat("items", 2, Bitmap(None, (UInt("a", 3), UInt("b", 4)))), UInt("after", 4))


def test_repeat_count_then_items() -> None:
    values = {"items": [{"a": 5}, {"b": 9}, {}], "after": 3}
    raw = en1545.encode(REPEAT, values)
    # count 11; item1 mask 01 a=101; item2 mask 10 b=1001; item3 mask 00; after=0011
    assert raw == record("11 01 101 10 1001 00 0011")
    assert en1545.decode(REPEAT, raw) == values


def test_repeat_of_scalars() -> None:
    fields = (Repeat("codes", 3, UInt("code", 4)),)
    assert en1545.encode(fields, {"codes": [1, 15]}) == record("010 0001 1111")
    assert en1545.decode(fields, record("010 0001 1111")) == {"codes": [1, 15]}


def test_repeat_too_many_items() -> None:
    with pytest.raises(SchemaError, match="4 items do not fit a 2-bit counter") as err:
        en1545.encode(REPEAT, {"items": [{}] * 4, "after": 0})
    assert err.value.field == "items"


def test_group_in_bitmap_is_all_or_nothing() -> None:
    fields = (Bitmap(None, (Group(None, (UInt("sold", 8), UInt("debit", 5))), UInt("z", 1))),)
    assert en1545.encode(fields, {"sold": 10, "debit": 1}) == record("01 00001010 00001")
    with pytest.raises(SchemaError, match="missing") as err:
        en1545.encode(fields, {"sold": 10})
    assert err.value.field == "debit"


# ---------------------------------------------------------------- unknown bits are kept


def test_tail_bits_are_kept() -> None:
    fields = (UInt("a", 8),)
    raw = bytes([0x12]) + bytes(27) + bytes([0x01])
    decoded = en1545.decode(fields, raw)
    assert decoded == {"a": 0x12, "_tail": "0" * 223 + "1"}
    assert en1545.encode(fields, decoded) == raw


def test_zero_tail_is_not_shown() -> None:
    assert en1545.decode((UInt("a", 8),), bytes([7]) + bytes(28)) == {"a": 7}


REST = (
    Bitmap(None, (UInt("a", 4), Bitmap("data", (UInt("status", 1), Rest("extra"))))),
    UInt("next", 8),
)


def test_rest_keeps_every_remaining_bit() -> None:
    # mask 10: data only; data mask 11: status and extra; status=1; extra = the 227 bits left
    raw = record("10 11 1 " + "1" * 50)
    decoded = en1545.decode(REST, raw)
    assert decoded == {"data": {"status": 1, "extra": "1" * 50 + "0" * (232 - 5 - 50)}}
    assert "next" not in decoded  # swallowed by the field of unknown length
    assert en1545.encode(REST, decoded) == raw


def test_nothing_can_follow_rest() -> None:
    with pytest.raises(SchemaError, match="cannot follow") as err:
        en1545.encode(REST, {"data": {"extra": "1"}, "next": 1})
    assert err.value.field == "next"


@settings(max_examples=200)
@given(raw_for(REST))
def test_rest_layout_round_trips_random_raw(raw: bytes) -> None:
    assert en1545.encode(REST, en1545.decode(REST, raw)) == raw


@settings(max_examples=200)
@given(raw_for(BITMAP + REPEAT))
def test_random_raw_round_trips(raw: bytes) -> None:
    fields = BITMAP + REPEAT
    assert en1545.encode(fields, en1545.decode(fields, raw)) == raw


@settings(max_examples=200)
@given(values_for(BITMAP + REPEAT))
def test_random_values_round_trip(values: dict[str, Any]) -> None:
    fields = BITMAP + REPEAT
    assert en1545.decode(fields, en1545.encode(fields, values)) == values


# ---------------------------------------------------------------- record-level errors


def test_unknown_key_is_refused() -> None:
    with pytest.raises(SchemaError, match="unknown field 'frist'") as err:
        en1545.encode(BITMAP, {"frist": 1})
    assert err.value.field == "frist"


def test_unknown_key_in_nested_bitmap() -> None:
    with pytest.raises(SchemaError) as err:
        en1545.encode(BITMAP, {"inner": {"z": 1}})
    assert err.value.field == "inner.z"


def test_missing_mandatory_field() -> None:
    with pytest.raises(SchemaError, match="missing") as err:
        en1545.encode((UInt("a", 4), UInt("b", 4)), {"a": 1}, where="rec.")
    assert err.value.field == "rec.b"


def test_record_full_on_encode() -> None:
    fields = (Alpha("long", 240),)
    with pytest.raises(SchemaError, match="record is full") as err:
        en1545.encode(fields, {"long": "A"})
    assert err.value.field == "long"


def test_field_past_the_end_on_decode() -> None:
    fields = (Bitmap(None, (UInt("a", 230), UInt("b", 8))),)
    with pytest.raises(SchemaError, match="record ends at bit 232") as err:
        en1545.decode(fields, record("11" + "0" * 230))
    assert err.value.field == "b"


def test_bad_tail() -> None:
    with pytest.raises(SchemaError, match="0 and 1"):
        en1545.encode((UInt("a", 4),), {"a": 1, "_tail": "12"})


# ---------------------------------------------------------------- layout checks


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((UInt("a", 1), UInt("a", 2)), "duplicate key"),
        ((Bitmap(None, (Bitmap(None, (UInt("a", 1),)),)),), "needs a name"),
        ((Bitmap(None, (Rest("r"), UInt("a", 1))),), "must come last"),
        ((Repeat("l", 2, Bitmap(None, (Rest("r"),))),), "cannot be repeated"),
    ],
)
def test_check_layout(fields: tuple[en1545.Field, ...], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        en1545.check_layout(fields)


def test_rest_may_end_a_record_level_part() -> None:
    en1545.check_layout(REST)  # "next" after the bitmap holding the Rest is allowed


def test_bad_field_declarations() -> None:
    with pytest.raises(SchemaError):
        Alpha("s", 12)
    with pytest.raises(SchemaError):
        Enum("e", 2, values={4: "too big"})
    with pytest.raises(SchemaError):
        Bcd("c", 6)


def test_describe_lists_every_field() -> None:
    paths = [row.path for row in en1545.describe(BITMAP)]
    assert paths == [
        "(bitmap)",
        "  first",
        "  second",
        "  inner",
        "  inner.x",
        "  inner.y",
        "  fourth",
    ]
