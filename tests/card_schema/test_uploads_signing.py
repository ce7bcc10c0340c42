"""The SAM signing bytes: the backend's hot path writes exactly the reference bytes.

``wire_record_signing_bytes`` (the validation loop, on a record as JSON) must equal
``record_signing_bytes`` (the terminal, on the decoded record) byte for byte, and its msgspec
encoding must equal the json module's canonical form for every value a record can hold.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from card_schema.uploads.batch import record_to_json
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
from card_schema.uploads.signing import (
    SIGNED_FIELDS,
    record_signing_bytes,
    wire_record_signing_bytes,
)

T0 = datetime(2025, 9, 1, 7, 31, 2, 123000, tzinfo=UTC)


def sample_record() -> JournalRecord:
    intent = TransactionIntent(
        kind=TransactionKind.SV_DEBIT,
        application="wallet",
        card_serial=bytes.fromhex("0000000012345678"),
        card_tx_counter=0xFFFF12,
        occurred_at=T0,
        movements=(PurseMovement("wallet.sv", PurseUnit.EUROCENT, -180, 5000, 4820),),
        product_code=2,
        station_id=1042,
        last_events=(bytes(29),),
        written_event=bytes(range(29)),
    )
    return JournalRecord(
        terminal_id="GATE-LIL-0042",
        seq=77,
        state=TransactionState.COMMITTED,
        intent=intent,
        sam_signature=bytes(15),
        resolution=Resolution.CARD_CLOSE,
        decided_at=T0 + timedelta(milliseconds=180),
    )


def _reference(record: dict[str, Any]) -> bytes:
    signed = {name: record[name] for name in SIGNED_FIELDS}
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_every_code_point_is_written_as_the_json_module_writes_it() -> None:
    record = record_to_json(sample_record())
    for start in range(0, 0x110000, 0x400):
        chars = "".join(chr(c) for c in range(start, start + 0x400) if not 0xD800 <= c < 0xE000)
        record["written_event"] = chars
        assert wire_record_signing_bytes(record) == _reference(record)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.fixed_dictionaries({name: json_values for name in SIGNED_FIELDS}))
def test_any_json_values_give_the_reference_bytes(record: dict[str, Any]) -> None:
    assert wire_record_signing_bytes(record) == _reference(record)


def test_integers_beyond_64_bits_are_written_as_the_json_module_writes_them() -> None:
    record = record_to_json(sample_record())
    record["station_id"] = 2**70
    assert wire_record_signing_bytes(record) == _reference(record)


def test_wire_bytes_equal_the_terminal_side_bytes() -> None:
    record = sample_record()
    wire = record_to_json(record)
    assert wire_record_signing_bytes(wire) == record_signing_bytes(record)
    assert wire_record_signing_bytes(wire) == canonical_json(
        {name: wire[name] for name in SIGNED_FIELDS}
    )


@pytest.mark.parametrize(
    ("length", "inputs"),
    [
        (198, ("raw",)),  # fits the 206-byte PSO message with the 8 trace bytes of mode 68
        (199, ("sha256", "raw")),  # raw while 7 trace bytes were reserved: still accepted
        (255, ("sha256", "raw")),  # raw before Calypso framing
        (256, ("sha256",)),
    ],
)
def test_sam_signature_inputs_keep_every_rule_ever_signed(
    length: int, inputs: tuple[str, ...]
) -> None:
    import hashlib

    from card_schema.uploads.signing import sam_signature_input, sam_signature_inputs

    signing = bytes(range(256))[:length]
    digest = hashlib.sha256(signing).digest()
    by_name = {"raw": signing, "sha256": digest}
    assert sam_signature_inputs(signing) == tuple(by_name[n] for n in inputs)
    assert sam_signature_input(signing) == by_name[inputs[0]]
