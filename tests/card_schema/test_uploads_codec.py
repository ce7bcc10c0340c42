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

from card_schema.uploads import batch as batch_module
from card_schema.uploads import records
from card_schema.uploads.batch import (
    SIGNATURE_ALG,
    Batch,
    BatchSummary,
    key_id,
    record_from_json,
    record_to_json,
    reference_record_from_json,
    sign_batch,
    strict_json_loads,
    verify_batch,
    verify_batch_summary,
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
            "0999-12-31T23:59:59.999Z",
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


# -- the typed whole-batch path ----------------------------------------------------------------
#
# verify_batch and verify_batch_summary first try one typed decode (msgspec) with the remaining
# checks done on whole columns (hex strings, timestamps); whatever it does not accept goes to
# the reference path, which decides and words the refusal. So: the same result, the same error
# and the same message as the reference path, on every body; and valid bodies take the fast path.


def test_record_of_a_year_before_1000_is_left_to_the_reference() -> None:
    # The constructors re-format such a time through strftime, which may not pad the year.
    for name in ("occurred_at", "decided_at"):
        obj = _record(**{name: "0999-12-31T23:59:59.999Z"})
        assert _outcome(record_from_json, obj) == _outcome(reference_record_from_json, obj)


def _judged(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except (BatchFormatError, BatchSignatureError, RecordError) as exc:
        return type(exc).__name__, str(exc)


def _text(value: Any) -> bytes:
    """``value`` as canonical JSON would spell it, floats and all (the reference refuses them)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _envelope(
    batch_bytes: bytes, *, key: Ed25519PrivateKey = KEY, changes: dict[str, Any] | None = None
) -> bytes:
    """A body around ``batch_bytes`` as they are, signed as they are by ``key``."""
    signature: dict[str, Any] = {
        "alg": "Ed25519",
        "key_id": key_id(key.public_key()),
        "value": key.sign(batch_bytes).hex().upper(),
    }
    signature.update(changes or {})
    return b'{"batch":' + batch_bytes + b',"signature":' + _text(signature) + b"}"


def _payload(
    records: list[Any], uncertain: list[Any] | None = None, changes: dict[str, Any] | None = None
) -> Any:
    seqs = [r.get("terminal_seq") if isinstance(r, dict) else None for r in records] or [None]
    payload = {
        "format": batch_module.FORMAT,
        "terminal_id": "CANTINE-1",
        "batch_id": batch_module.batch_id_for("CANTINE-1", seqs[0], seqs[-1]),  # type: ignore[arg-type]
        "created_at": "2025-09-01T07:46:02.123Z",
        "first_seq": seqs[0],
        "last_seq": seqs[-1],
        "records": records,
        "uncertain": [] if uncertain is None else uncertain,
    }
    payload.update(changes or {})
    return payload


def _uncertain(seq: int = 2000, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    ref = {"card_serial": "00000000ABCDEF01", "card_tx_counter": 5, "terminal_seq": seq}
    return {**ref, **(changes or {})}


def _assert_judged_like_the_reference(body: bytes) -> tuple[str, Any]:
    public_key = KEY.public_key()
    reference = _judged(batch_module._verify_batch_reference, body, public_key)
    assert _judged(verify_batch, body, public_key) == reference
    summary = _judged(verify_batch_summary, body, public_key)
    if reference[0] == "ok":
        assert summary == ("ok", BatchSummary.of(reference[1]))
        fast = verify_batch(body, public_key)
        assert hash(fast) == hash(reference[1])
        assert fast.to_json() == reference[1].to_json()
        assert fast.created_at.tzinfo is UTC
        assert all(r.intent.occurred_at.tzinfo is UTC for r in fast.records)
        assert all(r.decided_at is not None and r.decided_at.tzinfo is UTC for r in fast.records)
    else:
        assert summary == reference
    # The first reference as well (its own wording): at least the same kind of answer.
    assert _outcome(verify_batch, body, public_key) == _outcome(
        _reference_verify_batch, body, public_key
    )
    return reference


def test_wire_structures_spell_the_documented_fields_in_canonical_order() -> None:
    expected = {
        batch_module._WireMovement: records.MOVEMENT_FIELDS,
        batch_module._WireRecord: batch_module.RECORD_FIELDS,
        batch_module._WireUncertain: batch_module.UNCERTAIN_FIELDS,
        batch_module._WireBatch: batch_module.BATCH_FIELDS,
        batch_module._WireSignature: {"alg", "key_id", "value"},
        batch_module._WireEnvelope: {"batch", "signature"},
    }
    for struct, names in expected.items():
        fields = struct.__struct_fields__
        assert set(fields) == set(names), struct
        assert list(fields) == sorted(fields), struct  # re-encoding writes sorted keys


_VALID_VARIANTS: list[dict[str, Any]] = [
    {},
    {"outcome": "COMMITTED", "resolution": "recovered_from_card", "sam_signature": None},
    {"outcome": "ABORTED", "resolution": "card_refusal", "sam_signature": None},
    {"outcome": "ABORTED", "resolution": "not_on_card", "sam_signature": "", "abort_reason": "x"},
    {"movements": [], "last_events": [], "written_event": None, "school_uai": None},
    {"last_events": ["", "AB"], "written_event": "", "card_serial": "AB"},
    {"card_serial": "00" * 16, "card_tx_counter": 0, "product_code": None, "station_id": 0},
    {"card_tx_counter": 0xFFFFFF, "product_code": 2**53 - 1, "station_id": -(2**53 - 1)},
    {"school_uai": "école", "abort_reason": "ünïcödé ✓ \u2028\x7f", "application": "日本"},
    {"occurred_at": "2024-02-29T23:59:59.999Z", "decided_at": "1000-01-01T00:00:00.000Z"},
    {"occurred_at": "9999-12-31T23:59:59.999Z", "decided_at": "2025-09-30T20:00:00.000Z"},
]


@pytest.mark.parametrize("changes", _VALID_VARIANTS)
def test_valid_bodies_take_the_fast_path(changes: dict[str, Any]) -> None:
    records_ = [_record(terminal_seq=1041, **changes), _record(terminal_seq=1050)]
    body = _envelope(
        _text(_payload(records_, [_uncertain(), _uncertain(2001, {"card_serial": ""})]))
    )
    assert batch_module._fast_envelope(body, KEY.public_key()) is not None
    assert _assert_judged_like_the_reference(body)[0] == "ok"
    assert sign_batch(verify_batch(body, KEY.public_key()), KEY) == body


def test_the_fast_path_leaves_escapes_and_other_keys_to_the_reference() -> None:
    body = _envelope(_text(_payload([_record(school_uai='"')])))
    assert b"\\" in body
    assert batch_module._fast_envelope(body, KEY.public_key()) is None
    assert _assert_judged_like_the_reference(body)[0] == "ok"
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    body = _envelope(_text(_payload([_record()])), key=other)
    assert batch_module._fast_envelope(body, KEY.public_key()) is None
    assert _assert_judged_like_the_reference(body)[0] == "BatchSignatureError"


_STAMPS = st.one_of(
    _near_valid_timestamp(),
    _timestamp_like(),
    st.sampled_from(
        [
            "0999-12-31T23:59:59.999Z",
            "0000-01-01T00:00:00.000Z",
            "2024-02-29T00:00:00.000Z",
            "2025-02-29T00:00:00.000Z",
            "2025-04-31T00:00:00.000Z",
            "2025-09-01T24:00:00.000Z",
            "2025-09-01T23:60:00.000Z",
            "2025-09-01T23:59:60.000Z",
            "2025-09-01T07:31:02.123+00:00",
            "2025-09-01 07:31:02.123Z",
            "2025-09-01T07:31:02Z",
            "2025-09-01T07:31:02.1234Z",
            "2025-09-01T07:31:02.123z",
            "2025-9-01T07:31:02.123Z",
            "+2025-09-01T07:31:02.123Z",
            "2025-09-01T07:31:02.123Z,2025-09-01T07:31:02.123Z",
            "",
        ]
    ),
)
_BATCH_VALUES = st.one_of(
    _VALUES,
    _STAMPS,
    st.floats(),
    st.sampled_from(
        [
            2**53 - 1,
            2**53,
            -(2**53 - 1),
            -(2**53),
            2**64,
            -(2**63) - 1,
            0xFFFFFF + 1,
            -1,
            "00" * 16,
            "0a",
            "0G",
            "A B",
            " AB",
            "AB\n",
            "é",
            'a"b',
            "a\\b",
            "\x01",
            "\u2028",
            "\ud800",
            "CANTINE-1",
            "CANTINE-2",
            "regioncard.batch/1",
            "ABORTED",
            "UNCERTAIN",
            "sv_debit",
            "count",
            [[]],
            [""],
            ["AB", "CD"],
            ["AB", "ABC"],
            {"extra": 1},
        ]
    ),
)
_HEX_TEXT = st.binary(max_size=20).map(lambda raw: raw.hex().upper())
_SERIAL = st.binary(min_size=1, max_size=16).map(lambda raw: raw.hex().upper())
_INTS = st.one_of(
    st.integers(-(2**53 - 1), 2**53 - 1),
    st.sampled_from([0, -1, 2**53 - 1, 2**53, -(2**53 - 1), -(2**53), 2**64]),
)
_TEXTS = st.one_of(st.text(max_size=8), st.sampled_from(["é", '"', "\\", "\u2028", "\x7f", "\x00"]))


@st.composite
def _movement(draw: st.DrawFn) -> dict[str, Any]:
    before, amount = draw(_INTS), draw(st.one_of(st.integers(-500, 500), _INTS))
    return {
        "purse": draw(st.one_of(st.sampled_from(["wallet.sv", "plum.counter.1"]), _TEXTS)),
        "unit": draw(st.sampled_from(["eurocent", "count", "EUROCENT"])),
        "amount": amount,
        "balance_before": before,
        "balance_after": before + amount + draw(st.sampled_from([0, 0, 0, 1])),
    }


# Values a field may plausibly take (most valid, some not), so that many batches verify.
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "abort_reason": st.one_of(st.none(), _TEXTS),
    "application": st.one_of(st.sampled_from(["plum", "wallet"]), _TEXTS),
    "card_serial": st.one_of(_SERIAL, _HEX_TEXT),
    "card_tx_counter": st.integers(-2, 0xFFFFFF + 2),
    "decided_at": _STAMPS,
    "kind": st.sampled_from([*(kind.value for kind in TransactionKind), "VALIDATION"]),
    "last_events": st.lists(_HEX_TEXT, max_size=3),
    "movements": st.lists(_movement(), max_size=3),
    "occurred_at": _STAMPS,
    "outcome": st.sampled_from([state.value for state in TransactionState]),
    "product_code": st.one_of(st.none(), _INTS),
    "resolution": st.sampled_from([resolution.value for resolution in Resolution]),
    "sam_signature": st.one_of(st.none(), _HEX_TEXT),
    "school_uai": st.one_of(st.none(), _TEXTS),
    "station_id": st.one_of(st.none(), _INTS),
    "terminal_id": st.sampled_from(["CANTINE-1", "CANTINE-2"]),
    "terminal_seq": st.one_of(st.integers(1000, 1100), _INTS),
    "written_event": st.one_of(st.none(), _HEX_TEXT),
    # the batch's own fields and the uncertain references'
    "created_at": _STAMPS,
    "batch_terminal_id": st.sampled_from(["CANTINE-1", "CANTINE-2", "", "C" * 65, "CANTINE 1"]),
    "uncertain_seq": st.one_of(st.integers(1040, 1045), _INTS),
    "uncertain_serial": _HEX_TEXT,
    "uncertain_counter": st.one_of(_INTS, st.none()),
}
# The uncertain references' and the batch's names for their entries above.
_ALIASES = {
    "terminal_id": "batch_terminal_id",
    "terminal_seq": "uncertain_seq",
    "card_serial": "uncertain_serial",
    "card_tx_counter": "uncertain_counter",
}
_OUTCOMES = st.sampled_from(
    [
        ("COMMITTED", "card_close", "00C0FFEE"),
        ("COMMITTED", "card_close", None),
        ("COMMITTED", "recovered_from_card", None),
        ("COMMITTED", "recovered_from_card", "00"),
        ("ABORTED", "card_refusal", None),
        ("ABORTED", "not_on_card", None),
        ("ABORTED", "card_close", "00"),
        ("UNCERTAIN", "not_on_card", None),
    ]
)


def _changes(
    data: st.DataObject, names: list[str], aliases: dict[str, str] | None = None
) -> dict[str, Any]:
    """Up to 3 fields of ``names`` changed: mostly plausible values, sometimes anything."""
    aliases = aliases or {}
    changes = {}
    for name in data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        wild = name == "extra" or data.draw(st.sampled_from([False, False, False, True]))
        values = _BATCH_VALUES if wild else _FIELD_VALUES[aliases.get(name, name)]
        changes[name] = data.draw(values)
    return changes


@settings(max_examples=600)
@given(st.data())
def test_re_signed_batches_are_judged_like_the_reference(data: st.DataObject) -> None:
    """Whole batches with changed fields, re-signed: same answer as the reference path."""
    record_names = sorted(batch_module.RECORD_FIELDS)
    batch_records: list[Any] = []
    for index in range(data.draw(st.integers(0, 3), label="records")):
        obj = _record(terminal_seq=1041 + 7 * index)
        if data.draw(st.booleans(), label="new outcome"):
            obj["outcome"], obj["resolution"], obj["sam_signature"] = data.draw(_OUTCOMES)
        obj.update(_changes(data, [*record_names, "extra"]))
        if data.draw(st.sampled_from([False] * 9 + [True]), label="drop a field"):
            obj.pop(data.draw(st.sampled_from(record_names)), None)
        batch_records.append(obj)
    uncertain = [
        _uncertain(2000 + i, _changes(data, sorted(batch_module.UNCERTAIN_FIELDS), _ALIASES))
        for i in range(data.draw(st.integers(0, 2), label="uncertain"))
    ]
    payload = _payload(
        batch_records, uncertain, _changes(data, ["created_at", "terminal_id"], _ALIASES)
    )
    if data.draw(st.sampled_from([False] * 9 + [True]), label="wild batch change"):
        payload.update(
            data.draw(
                st.dictionaries(
                    st.sampled_from([*sorted(payload), "extra"]), _BATCH_VALUES, max_size=1
                )
            )
        )
    signature_changes = {}
    if data.draw(st.sampled_from([False] * 9 + [True]), label="signature change"):
        signature_changes = data.draw(
            st.dictionaries(
                st.sampled_from(["alg", "key_id", "value", "extra"]), _BATCH_VALUES, max_size=1
            )
        )
    _assert_judged_like_the_reference(_envelope(_text(payload), changes=signature_changes))


_VALID_BODY_BATCH = _text(
    _payload(
        [_record(), _record(terminal_seq=1042, school_uai="école", last_events=[])],
        [_uncertain()],
    )
)
_INSERTS = [
    b" ",
    b"\\",
    b'"',
    b",",
    b":",
    b"0",
    b"1",
    b"-",
    b".",
    b"e",
    b"}",
    b"]",
    b"a",
    b"\xc3\xa9",
]


@settings(max_examples=600)
@given(
    st.integers(0, len(_VALID_BODY_BATCH) - 1),
    st.one_of(
        st.tuples(st.just("insert"), st.sampled_from(_INSERTS)),
        st.tuples(st.just("replace"), st.sampled_from(_INSERTS)),
        st.tuples(st.just("delete"), st.just(b"")),
        st.tuples(st.just("lower"), st.just(b"")),
    ),
)
def test_edited_then_re_signed_bodies_are_judged_like_the_reference(
    position: int, edit: tuple[str, bytes]
) -> None:
    """Any spelling of the signed bytes, signature valid: only the canonical one may pass."""
    data = bytearray(_VALID_BODY_BATCH)
    kind, text = edit
    if kind == "insert":
        data[position:position] = text
    elif kind == "replace":
        data[position : position + 1] = text
    elif kind == "delete":
        del data[position]
    else:
        data[position : position + 1] = bytes(data[position : position + 1]).lower()
    _assert_judged_like_the_reference(_envelope(bytes(data)))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"amount":-80', b'"amount":-80,"amount":-80'),  # duplicate key, same value
        (b'"first_seq":1041', b'"first_seq":1041,"first_seq":1041'),
        (b'"amount":-80', b'"amount":-80.0'),
        (b'"amount":-80', b'"amount":-0.8e2'),
        (b'"amount":-80', b'"amount":-9007199254740992'),
        (b'"amount":-80', b'"amount":-00080'),
        (b'"amount":-80', b'"amount":-80 '),
        (b'"school_uai":"0590001A"', b'"school_uai":"\\u00e9cole"'),
        (b'"school_uai":"0590001A"', b'"school_uai":"\\ud800"'),
        (b'"school_uai":"0590001A"', b'"school_uai":"\\/"'),
        (b'"school_uai":"0590001A"', b'"\\u0073chool_uai":"0590001A"'),
        (b'"school_uai":"0590001A"', b'"school_uai":"\x01"'),
        (b'"school_uai":"0590001A"', b'"school_uai":"\xed\xa0\x80"'),
        (b'"station_id":null', b'"station_id":false'),
        (b'"station_id":null', b'"station_id":true'),
        (b'"first_seq":1041', b'"first_seq":true'),  # the reference compares it with == 1041
        (b'"card_tx_counter":311', b'"card_tx_counter":true'),
        (b'"card_serial":"0000000012345678"', b'"card_serial":"000000001234567a"'),
        (b'"card_serial":"0000000012345678"', b'"card_serial":"000000001234567"'),
    ],
)
def test_edited_and_re_signed_spellings_are_judged_like_the_reference(
    old: bytes, new: bytes
) -> None:
    assert old in _VALID_BODY_BATCH
    _assert_judged_like_the_reference(_envelope(_VALID_BODY_BATCH.replace(old, new, 1)))


@settings(max_examples=500)
@given(st.lists(_STAMPS, min_size=1, max_size=4))
def test_timestamp_columns_accept_what_parse_utc_accepts(stamps: list[str]) -> None:
    def accepted(stamp: str) -> bool:
        moment = _outcome(parse_utc, stamp, field_name="t")
        ascii_digits = stamp[:4].isascii()
        return moment[0] == "ok" and moment[1].year >= 1000 and ascii_digits

    assert batch_module._all_utc(stamps) is all(accepted(s) for s in stamps)


@settings(max_examples=500)
@given(st.lists(st.text("0123456789ABCDEFabcdef xG,é\n", max_size=6), min_size=1, max_size=4))
def test_hex_columns_accept_what_from_hex_accepts(texts: list[str]) -> None:
    expected = all(_outcome(from_hex, t, field_name="x")[0] == "ok" for t in texts)
    assert batch_module._all_upper_hex(texts) is expected
