"""Traceable signatures checked one by one and in a batch give the same answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from card_schema.errors import VerificationError
from card_schema.traceability import (
    TraceableSignature,
    sam_trace_key,
    traceable_signature,
    verify_traceable_signature,
    verify_traceable_signatures,
)

KEY = sam_trace_key(bytes(range(16)), b"\x5a\x00\x00\x01")


def _signed(counter: int, record: bytes) -> bytes:
    serial = b"\x5a\x00\x00\x01"
    mac = traceable_signature(KEY, serial, counter, record)
    return serial + counter.to_bytes(3, "big") + mac


def _one(signed: bytes, record: bytes) -> TraceableSignature | str:
    try:
        return verify_traceable_signature(KEY, signed, record)
    except VerificationError as exc:
        return str(exc)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=0xFFFFFF),
            st.binary(max_size=300),
            st.sampled_from(["genuine", "other record", "bit flipped", "truncated"]),
        ),
        max_size=30,
    )
)
def test_a_batch_answers_as_each_check_would(items: list[tuple[int, bytes, str]]) -> None:
    pairs = []
    for counter, record, how in items:
        signed = _signed(counter, record)
        if how == "other record":
            record = record + b"!"
        elif how == "bit flipped":
            signed = signed[:-1] + bytes([signed[-1] ^ 1])
        elif how == "truncated":
            signed = signed[:-1]
        pairs.append((signed, record))
    batch = [
        str(result) if isinstance(result, VerificationError) else result
        for result in verify_traceable_signatures(KEY, pairs)
    ]
    assert batch == [_one(signed, record) for signed, record in pairs]


def test_a_forgery_in_a_batch_is_a_verification_error_value() -> None:
    good = (_signed(7, b"record"), b"record")
    forged = (_signed(8, b"record"), b"another record")
    results = verify_traceable_signatures(KEY, [good, forged, good])
    assert isinstance(results[0], TraceableSignature) and results[0].sam_counter == 7
    assert isinstance(results[1], VerificationError)
    assert isinstance(results[2], TraceableSignature)
