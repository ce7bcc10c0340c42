"""The fast paths of the upload codec accept and refuse exactly what the reference rules do.

``card_schema.uploads`` reads batches through fast paths (one C-speed parse and canonical check,
slicing for timestamps, records built without the dataclass constructors) that hand anything
unusual to the reference rules. These properties compare the two on valid and broken input: same
result, or the same kind of refusal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from card_schema.uploads import records
from card_schema.uploads.batch import (
    SIGNATURE_ALG,
    Batch,
    key_id,
    record_from_json,
    record_to_json,
    reference_record_from_json,
    sign_batch,
    strict_json_loads,
    verify_batch,
)
from card_schema.uploads.errors import BatchFormatError, BatchSignatureError, RecordError
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    Resolution,
    TransactionIntent,
    TransactionKind,
    TransactionState,
    canonical_json,
    format_utc,
    from_hex,
    normalise_utc,
    parse_utc,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
T0 = datetime(2025, 9, 1, 7, 31, 2, 123000, tzinfo=UTC)


def _outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args, **kwargs)
    except (BatchFormatError, BatchSignatureError, RecordError) as exc:
        return type(exc).__name__, None


# -- timestamps --------------------------------------------------------------------------------

_DIGITS = "0123456789٠١٢٣٤٥٦٧٨٩０１２"  # other decimal digits on purpose


@st.composite
def _timestamp_like(draw: st.DrawFn) -> str:
    parts = [
        draw(st.text(_DIGITS, min_size=3, max_size=5)),
        "-",
        draw(st.text(_DIGITS, min_size=1, max_size=3)),
        "-",
        draw(st.text(_DIGITS, min_size=2, max_size=2)),
        draw(st.sampled_from(["T", "t", " "])),
        draw(st.text(_DIGITS, min_size=2, max_size=2)),
        ":",
        draw(st.text(_DIGITS, min_size=2, max_size=2)),
        ":",
        draw(st.text(_DIGITS, min_size=2, max_size=2)),
        ".",
        draw(st.text(_DIGITS, min_size=2, max_size=4)),
        draw(st.sampled_from(["Z", "z", "", "+00:00"])),
    ]
    return "".join(parts)


@st.composite
def _near_valid_timestamp(draw: st.DrawFn) -> str:
    fields = [
        draw(st.integers(0, 9999)),
        draw(st.integers(0, 14)),
        draw(st.integers(0, 33)),
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 62)),
        draw(st.integers(0, 999)),
    ]
    return "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z".format(*fields)


@settings(max_examples=600)
@given(st.one_of(_timestamp_like(), _near_valid_timestamp(), st.text(max_size=30), st.integers()))
def test_parse_utc_matches_the_strptime_reference(text: Any) -> None:
    fast = _outcome(parse_utc, text, field_name="t")
    reference = _outcome(records._parse_utc_strptime, text, field_name="t")
    assert fast == reference
    if fast[0] == "ok":
        assert fast[1].tzinfo is UTC


def _reference_format_utc(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(0), "UTC0"), timezone(timedelta(hours=2)), timezone.min]
)


@settings(max_examples=400)
@given(st.datetimes(timezones=_ZONES), st.booleans())
def test_format_and_normalise_match_the_round_trip(moment: datetime, fold: bool) -> None:
    moment = moment.replace(fold=int(fold))
    formatted = _outcome(format_utc, moment)
    assert formatted == _outcome(_reference_format_utc, moment)
    fast = _outcome(normalise_utc, moment)
    reference = _outcome(lambda m: parse_utc(format_utc(m), field_name="timestamp"), moment)
    assert fast == reference
    if fast[0] == "ok":
        assert fast[1].tzinfo is UTC and fast[1].fold == 0


def test_a_naive_time_is_still_refused() -> None:
    with pytest.raises(RecordError):
        normalise_utc(datetime(2025, 9, 1))


@given(st.text("0123456789ABCDEFabcdef xG", max_size=12))
def test_hex_spelling_is_unchanged(text: str) -> None:
    expected = len(text) % 2 == 0 and all(c in "0123456789ABCDEF" for c in text)
    assert (_outcome(from_hex, text, field_name="x")[0] == "ok") is expected


# -- records -----------------------------------------------------------------------------------


def _record(**changes: Any) -> dict[str, Any]:
    intent = TransactionIntent(
        kind=TransactionKind.CANTEEN_MEAL,
        application="cursus",
        card_serial=bytes.fromhex("0000000012345678"),
        card_tx_counter=311,
        occurred_at=T0,
        movements=(
            PurseMovement("cursus.canteen_aid", PurseUnit.EUROCENT, -250, 250, 0),
            PurseMovement("wallet.sv", PurseUnit.EUROCENT, -80, 500, 420),
        ),
        product_code=900,
        station_id=None,
        school_uai="0590001A",
        last_events=(bytes(29), bytes(range(29))),
        written_event=bytes([1, 2, 3]),
    )
    record = JournalRecord(
        terminal_id="CANTINE-1",
        seq=1041,
        state=TransactionState.COMMITTED,
        intent=intent,
        sam_signature=bytes(15),
        resolution=Resolution.CARD_CLOSE,
        decided_at=T0 + timedelta(milliseconds=180),
    )
    obj = record_to_json(record)
    obj.update(changes)
    return obj


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.sampled_from(
        [
            "",
            "AB",
            "ab",
            "ABC",
            "0000000012345678",
            "00" * 17,
            "2025-09-01T07:31:02.123Z",
            "2025-02-30T07:31:02.123Z",
            "COMMITTED",
            "ABORTED",
            "PENDING",
            "card_close",
            "card_refusal",
            "recovered_from_card",
            "not_on_card",
            "validation",
            "eurocent",
            "count",
        ]
    ),
    st.text(max_size=6),
    st.just([]),
    st.just({}),
    st.just(["AB", "ab"]),
    st.just([{"purse": "wallet.sv"}]),
)
_MOVEMENT_CHANGES = st.dictionaries(
    st.sampled_from(["purse", "unit", "amount", "balance_before", "balance_after", "extra"]),
    _VALUES,
    max_size=2,
)


@settings(max_examples=800)
@given(
    st.dictionaries(st.sampled_from(sorted(_record())), _VALUES, max_size=3),
    st.sets(st.sampled_from(sorted(_record())), max_size=1),
    _MOVEMENT_CHANGES,
    st.booleans(),
)
def test_record_decoding_matches_the_reference(
    changes: dict[str, Any],
    dropped: set[str],
    movement_changes: dict[str, Any],
    unknown_field: bool,
) -> None:
    obj = _record(**changes)
    movements = obj.get("movements")
    first = movements[0] if isinstance(movements, list) and movements else None
    if movement_changes and isinstance(first, dict):
        obj["movements"] = [dict(first, **movement_changes), *movements[1:]]
    for name in dropped:
        obj.pop(name)
    if unknown_field:
        obj["holder_profile"] = 3
    fast = _outcome(record_from_json, obj)
    reference = _outcome(reference_record_from_json, obj)
    assert fast == reference
    if fast[0] == "ok":  # same value and same behaviour as an object built by the constructor
        assert hash(fast[1]) == hash(reference[1])
        assert record_to_json(fast[1]) == record_to_json(reference[1])


def test_valid_records_take_the_fast_path_and_equal_the_reference() -> None:
    obj = _record()
    assert record_from_json(obj) == reference_record_from_json(obj)
    aborted = _record(
        outcome="ABORTED", resolution="card_refusal", sam_signature=None, abort_reason="6985"
    )
    assert record_from_json(aborted) == reference_record_from_json(aborted)


# -- whole batches -----------------------------------------------------------------------------


def _reference_verify_batch(data: bytes, public_key: Ed25519PublicKey) -> Batch:
    """``verify_batch`` as first written: every check on its own pass."""
    envelope = records.expect_object(strict_json_loads(data), {"batch", "signature"}, "envelope")
    try:
        canonical = canonical_json(envelope)
    except RecordError as exc:
        raise BatchFormatError(f"batch: {exc}") from exc
    if canonical != data:
        raise BatchFormatError("the batch body is not canonical JSON")
    signature = records.expect_object(
        envelope["signature"], {"alg", "key_id", "value"}, "signature"
    )
    if signature["alg"] != SIGNATURE_ALG:
        raise BatchSignatureError("alg")
    if signature["key_id"] != key_id(public_key):
        raise BatchSignatureError("key")
    raw_signature = from_hex(signature["value"], field_name="signature.value")
    try:
        public_key.verify(raw_signature, canonical_json(envelope["batch"]))
    except InvalidSignature as exc:
        raise BatchSignatureError("signature") from exc
    return Batch.from_json(envelope["batch"])


def _signed(payload: dict[str, Any]) -> bytes:
    """A body whose signature covers ``payload`` however it is spelt (the envelope re-signed)."""
    signature = KEY.sign(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    envelope = {
        "batch": payload,
        "signature": {
            "alg": "Ed25519",
            "key_id": key_id(KEY.public_key()),
            "value": signature.hex().upper(),
        },
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_BODY = sign_batch(Batch("CANTINE-1", T0, (reference_record_from_json(_record()),)), KEY)
_TEXT_EDITS = [
    (b'"amount":-80', b'"amount":-80.0'),
    (b'"amount":-80', b'"amount":-8e1'),
    (b'"amount":-80', b'"amount":NaN'),
    (b'"amount":-80', b'"amount":-9007199254740992'),
    (b'"amount":-80', b'"amount":-9007199254740991'),
    (b'"amount":-80', b'"amount": -80'),
    (b'"amount":-80', b'"amount":-80,"amount":-80'),
    (b'"amount":-80', b'"amount":-0080'),
    (b'"card_tx_counter":311', b'"card_tx_counter":12345678901234567'),
    (b'"card_tx_counter":311', b'"card_tx_counter":1234567890123456'),
    (b'"batch":{', b'"batch": {'),
    (b'"school_uai":"0590001A"', b'"school_uai":"\\u00e9"'),
    (b'"school_uai":"0590001A"', b'"school_uai":"\xc3\xa9"'),
    (b'"school_uai":"0590001A"', b'"school_uai":"\\ud800"'),
    (b'"school_uai":"0590001A"', b'"school_uai":"a:1234567890123456"'),
    (b'"school_uai":"0590001A"', b'"school_uai":"\xff"'),
    (b"}}", b"}} "),
    (b'"alg":"Ed25519"', b'"alg":"Ed448"'),
    (b'"format"', b'"format":1,"format"'),
]


@pytest.mark.parametrize(("old", "new"), _TEXT_EDITS)
def test_edited_bodies_are_judged_like_the_reference(old: bytes, new: bytes) -> None:
    assert old in _BODY
    body = _BODY.replace(old, new, 1)
    assert _outcome(verify_batch, body, KEY.public_key()) == _outcome(
        _reference_verify_batch, body, KEY.public_key()
    )


@settings(max_examples=300)
@given(st.integers(-(2**63), 2**63), st.sampled_from(["amount", "balance_before"]))
def test_re_signed_integers_are_judged_like_the_reference(value: int, name: str) -> None:
    payload = json.loads(_BODY)["batch"]
    movement = payload["records"][0]["movements"][1]
    movement[name] = value
    movement["balance_after"] = movement["balance_before"] + movement["amount"]
    body = _signed(payload)
    outcome = _outcome(verify_batch, body, KEY.public_key())
    assert outcome == _outcome(_reference_verify_batch, body, KEY.public_key())
    values = (movement["amount"], movement["balance_before"], movement["balance_after"])
    assert (outcome[0] == "ok") is all(abs(v) <= 2**53 - 1 for v in values)


@settings(max_examples=300)
@given(st.integers(0, len(_BODY) - 1), st.integers(1, 255))
def test_flipped_bytes_are_judged_like_the_reference(position: int, flip: int) -> None:
    body = bytearray(_BODY)
    body[position] ^= flip
    assert _outcome(verify_batch, bytes(body), KEY.public_key()) == _outcome(
        _reference_verify_batch, bytes(body), KEY.public_key()
    )


def test_the_valid_body_verifies_to_the_reference_batch() -> None:
    assert verify_batch(_BODY, KEY.public_key()) == _reference_verify_batch(_BODY, KEY.public_key())
