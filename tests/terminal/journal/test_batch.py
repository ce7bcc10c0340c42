"""The upload batch codec: canonical JSON, Ed25519 signature, strict decoding, privacy."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from card_schema.errors import RegionCardError, VerificationError
from card_schema.uploads.batch import (
    FORMAT,
    RECORD_FIELDS,
    Ack,
    AckStatus,
    Batch,
    UncertainRef,
    batch_id_for,
    key_id,
    record_to_json,
    sign_batch,
    strict_json_loads,
    verify_batch,
)
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    Resolution,
    TransactionIntent,
    TransactionKind,
    TransactionState,
    canonical_json,
)
from terminal.journal.errors import BatchFormatError, BatchSignatureError, RecordError

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"batch tests").digest())
DOCS = Path(__file__).resolve().parents[3] / "docs" / "batch-format.md"
T0 = datetime(2025, 9, 1, 7, 31, 2, 123000, tzinfo=UTC)


def _record(seq: int, **overrides: Any) -> JournalRecord:
    intent = TransactionIntent(
        kind=TransactionKind.VALIDATION,
        application="plum",
        card_serial=bytes.fromhex("0000000012345678"),
        card_tx_counter=100 + seq,
        occurred_at=T0,
        movements=(PurseMovement("plum.counter.1", PurseUnit.COUNT, -1, 10, 9),),
        product_code=21,
        station_id=1042,
        last_events=(b"\xa0" * 29,),
        written_event=b"\xee" * 29,
    )
    fields: dict[str, Any] = {
        "terminal_id": "GATE-LIL-0042",
        "seq": seq,
        "state": TransactionState.COMMITTED,
        "intent": intent,
        "sam_signature": bytes.fromhex("00C0FFEE0000002A") + b"\x5a" * 8,
        "resolution": Resolution.CARD_CLOSE,
        "decided_at": T0 + timedelta(seconds=1),
    }
    fields.update(overrides)
    return JournalRecord(**fields)


def _batch(*seqs: int) -> Batch:
    return Batch("GATE-LIL-0042", T0 + timedelta(hours=1), tuple(_record(s) for s in seqs))


def test_round_trip_and_derived_fields() -> None:
    batch = _batch(7, 8, 10)
    data = sign_batch(batch, KEY)
    decoded = verify_batch(data, KEY.public_key())
    assert decoded == batch
    assert decoded.batch_id == "GATE-LIL-0042:7-10" == batch_id_for("GATE-LIL-0042", 7, 10)
    payload = json.loads(data)["batch"]
    assert (payload["first_seq"], payload["last_seq"], payload["format"]) == (7, 10, FORMAT)


def test_canonical_bytes_are_stable() -> None:
    batch = _batch(1, 2)
    data = sign_batch(batch, KEY)
    assert sign_batch(batch, KEY) == data, "Ed25519 is deterministic and the JSON canonical"
    assert b" " not in data and b"\n" not in data
    envelope = json.loads(data)
    assert canonical_json(envelope) == data
    assert list(envelope["batch"]) == sorted(envelope["batch"])
    assert sign_batch(verify_batch(data, KEY.public_key()), KEY) == data


def test_tampered_amount_raises_signature_error() -> None:
    data = sign_batch(_batch(1), KEY)
    tampered = data.replace(b'"amount":-1', b'"amount":-2')
    assert tampered != data
    with pytest.raises(BatchSignatureError):
        verify_batch(tampered, KEY.public_key())


def test_another_terminals_key_raises() -> None:
    data = sign_batch(_batch(1), KEY)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with pytest.raises(BatchSignatureError, match="signed by key"):
        verify_batch(data, other)


def test_forged_key_id_still_fails_on_the_signature() -> None:
    data = sign_batch(_batch(1), Ed25519PrivateKey.from_private_bytes(bytes(32)))
    envelope = json.loads(data)
    envelope["signature"]["key_id"] = key_id(KEY.public_key())
    with pytest.raises(BatchSignatureError, match="does not verify"):
        verify_batch(canonical_json(envelope), KEY.public_key())


def test_signature_error_is_a_verification_error() -> None:
    assert issubclass(BatchSignatureError, VerificationError)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_raises(position: int, flip: int) -> None:
    data = bytearray(sign_batch(_batch(3, 4), KEY))
    data[position % len(data)] ^= flip
    with pytest.raises(RegionCardError):
        verify_batch(bytes(data), KEY.public_key())


def _resign(payload: dict[str, Any]) -> bytes:
    signature = KEY.sign(canonical_json(payload))
    return canonical_json(
        {
            "batch": payload,
            "signature": {
                "alg": "Ed25519",
                "key_id": key_id(KEY.public_key()),
                "value": signature.hex().upper(),
            },
        }
    )


def test_a_profile_field_is_refused_even_when_signed() -> None:
    """Privacy: there is no place for the holder's profile in a record, signed or not."""
    payload = json.loads(sign_batch(_batch(1), KEY))["batch"]
    payload["records"][0]["holder_profile"] = 3
    with pytest.raises(BatchFormatError, match="holder_profile"):
        verify_batch(_resign(payload), KEY.public_key())


def test_record_fields_are_exactly_the_documented_ones() -> None:
    fields = set(record_to_json(_record(1)))
    assert fields == RECORD_FIELDS
    assert not {f for f in fields if re.search("profile|social|employ|status|age", f)}
    documented = set(re.findall(r"^\| `(\w+)` \|", DOCS.read_text(encoding="utf-8"), flags=re.M))
    assert fields <= documented


def test_inconsistent_derived_fields_are_refused() -> None:
    payload = json.loads(sign_batch(_batch(1, 2), KEY))["batch"]
    payload["last_seq"] = 3
    with pytest.raises(BatchFormatError, match="last_seq"):
        verify_batch(_resign(payload), KEY.public_key())


def test_non_canonical_body_is_refused() -> None:
    data = sign_batch(_batch(1), KEY)
    spaced = json.dumps(json.loads(data), sort_keys=True).encode()
    with pytest.raises(BatchFormatError, match="canonical"):
        verify_batch(spaced, KEY.public_key())


@pytest.mark.parametrize(
    "body",
    [b"\xff", b"[1.5]", b'{"a":1,"a":2}', b"NaN", b"{", b"[" * 100_000],
)
def test_strict_json(body: bytes) -> None:
    with pytest.raises(BatchFormatError):
        strict_json_loads(body)


def test_undecided_or_foreign_records_do_not_make_a_batch() -> None:
    with pytest.raises(RecordError):
        Batch("GATE-LIL-0042", T0, ())
    with pytest.raises(RecordError):
        Batch("GATE-LIL-0042", T0, (_record(1, state=TransactionState.UNCERTAIN, resolution=None),))
    with pytest.raises(RecordError):
        Batch("GATE-LIL-0042", T0, (_record(1, terminal_id="GATE-2"),))
    with pytest.raises(RecordError):
        Batch("GATE-LIL-0042", T0, (_record(2), _record(1)))
    with pytest.raises(RecordError):
        Batch(
            "GATE-LIL-0042",
            T0,
            (_record(1),),
            (UncertainRef(1, b"\x01", 5),),
        )


def test_a_card_close_without_sam_signature_is_refused() -> None:
    payload = json.loads(sign_batch(_batch(1), KEY))["batch"]
    payload["records"][0]["sam_signature"] = None
    with pytest.raises(BatchFormatError, match="SAM"):
        verify_batch(_resign(payload), KEY.public_key())


def test_ack_round_trip_and_refusals() -> None:
    ack = Ack("GATE-LIL-0042:1-2", AckStatus.DUPLICATE)
    assert Ack.decode(ack.encode()) == ack
    assert AckStatus.ACCEPTED.done and AckStatus.DUPLICATE.done and not AckStatus.REJECTED.done
    with pytest.raises(BatchFormatError):
        Ack.decode(b'{"batch_id":"x","status":"ok","format":"regioncard.ack/1","detail":null}')
    with pytest.raises(BatchFormatError):
        Ack.decode(b'{"batch_id":"x","status":"accepted"}')


def test_the_documented_example_verifies() -> None:
    """docs/batch-format.md carries a real batch and the public key that verifies it."""
    text = DOCS.read_text(encoding="utf-8")
    public_hex = re.search(r"example public key \(raw, hex\): `([0-9A-F]{64})`", text)
    example = re.search(r"<!-- example-batch -->\n```json\n(.+?)\n```", text, flags=re.S)
    assert public_hex and example
    public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex.group(1)))
    batch = verify_batch(example.group(1).encode(), public_key)
    assert batch.batch_id == "GATE-LIL-0042:1041-1043"
    assert [r.state for r in batch.records] == [
        TransactionState.COMMITTED,
        TransactionState.ABORTED,
        TransactionState.COMMITTED,
    ]
    assert [u.terminal_seq for u in batch.uncertain] == [1044]


# -- property: any batch survives the codec unchanged, byte for byte -------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_small = st.integers(min_value=-(10**9), max_value=10**9)
_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@st.composite
def _movements(draw: st.DrawFn) -> PurseMovement:
    before, amount = draw(_small), draw(_small)
    return PurseMovement(
        draw(_text.filter(bool)), draw(st.sampled_from(PurseUnit)), amount, before, before + amount
    )


@st.composite
def _records(draw: st.DrawFn, seq: int) -> JournalRecord:
    intent = TransactionIntent(
        kind=draw(st.sampled_from(TransactionKind)),
        application=draw(_text.filter(bool)),
        card_serial=draw(st.binary(min_size=1, max_size=16)),
        card_tx_counter=draw(st.integers(min_value=0, max_value=0xFFFFFF)),  # 3 bytes
        occurred_at=draw(_moments),
        movements=tuple(draw(st.lists(_movements(), max_size=3))),
        product_code=draw(st.none() | st.integers(0, 2**16)),
        station_id=draw(st.none() | st.integers(0, 2**24)),
        school_uai=draw(st.none() | _text),
        last_events=tuple(draw(st.lists(st.binary(min_size=29, max_size=29), max_size=3))),
        written_event=draw(st.none() | st.binary(min_size=1, max_size=29)),
    )
    state, resolution = draw(
        st.sampled_from(
            [
                (TransactionState.COMMITTED, Resolution.CARD_CLOSE),
                (TransactionState.COMMITTED, Resolution.RECOVERED_FROM_CARD),
                (TransactionState.ABORTED, Resolution.CARD_REFUSAL),
                (TransactionState.ABORTED, Resolution.NOT_ON_CARD),
            ]
        )
    )
    signature = draw(st.binary(min_size=1, max_size=40))
    if resolution is not Resolution.CARD_CLOSE:
        signature = draw(st.none() | st.just(signature))
    return JournalRecord(
        terminal_id="T-1",
        seq=seq,
        state=state,
        intent=intent,
        sam_signature=signature,
        resolution=resolution,
        abort_reason=draw(st.none() | _text) if state is TransactionState.ABORTED else None,
        decided_at=draw(_moments),
    )


@st.composite
def _batches(draw: st.DrawFn) -> Batch:
    seqs = sorted(draw(st.sets(st.integers(1, 10**12), min_size=1, max_size=4)))
    records = tuple(draw(_records(seq)) for seq in seqs)
    uncertain = draw(
        st.lists(
            st.builds(
                UncertainRef,
                st.integers(1, 10**12).filter(lambda s: s not in seqs),
                st.binary(min_size=1, max_size=16),
                st.integers(0, 2**32),
            ),
            max_size=2,
        )
    )
    return Batch("T-1", draw(_moments), records, tuple(uncertain))


@settings(max_examples=80, deadline=None)
@given(_batches())
def test_codec_round_trip_property(batch: Batch) -> None:
    data = sign_batch(batch, KEY)
    decoded = verify_batch(data, KEY.public_key())
    assert decoded == batch
    assert sign_batch(decoded, KEY) == data


@pytest.mark.parametrize("counter", [-1, 0x1000000])
def test_a_card_counter_outside_three_bytes_is_refused(counter: int) -> None:
    with pytest.raises(RecordError, match="0xFFFFFF"):
        TransactionIntent(
            kind=TransactionKind.VALIDATION,
            application="plum",
            card_serial=bytes.fromhex("0000000012345678"),
            card_tx_counter=counter,
            occurred_at=T0,
        )
