"""The upload batch: canonical JSON signed with the terminal's Ed25519 device key.

The format is specified for the backend in ``docs/batch-format.md`` (format
``regioncard.batch/1``); this module is its reference implementation. It is pure (no IO, no
database) and keys are passed in, never read from globals.

Wire form (canonical JSON, see :func:`card_schema.uploads.records.canonical_json`)::

    {"batch":{...},"signature":{"alg":"Ed25519","key_id":"<16 hex>","value":"<128 hex>"}}

The signed bytes are the canonical JSON of the ``batch`` object alone. The whole body is itself
canonical, so the same batch is always the same bytes, which is what makes a re-send idempotent.

Receiving: :func:`verify_batch` (and :func:`verify_batch_summary`, the same checks without
building the records) first tries one typed C-speed decode (msgspec, :func:`_fast_envelope`)
that accepts only what the reference rules accept; any body it does not accept goes through the
reference rules (stdlib JSON and the dataclass constructors), which decide and word the
refusal. ``tests/card_schema/test_uploads_codec.py`` compares the two with Hypothesis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from operator import itemgetter
from typing import Annotated, Any, cast

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from msgspec import Meta, Struct

from card_schema.uploads.counters import CARD_COUNTER_MAX
from card_schema.uploads.errors import BatchFormatError, BatchSignatureError, RecordError
from card_schema.uploads.records import (
    INTENT_FIELDS,
    MAX_SAFE_INTEGER,
    MOVEMENT_FIELDS,
    TERMINAL_ID_PATTERN,
    JournalRecord,
    PurseMovement,
    PurseUnit,
    Resolution,
    TransactionIntent,
    TransactionKind,
    TransactionState,
    canonical_json,
    check_terminal_id,
    expect_int,
    expect_list,
    expect_object,
    expect_opt_str,
    expect_str,
    fast_parse_utc,
    format_utc,
    from_hex,
    normalise_utc,
    parse_utc,
    to_hex,
)

FORMAT = "regioncard.batch/1"
ACK_FORMAT = "regioncard.ack/1"
SIGNATURE_ALG = "Ed25519"

RECORD_FIELDS = INTENT_FIELDS | {
    "terminal_id",
    "terminal_seq",
    "outcome",
    "resolution",
    "abort_reason",
    "decided_at",
    "sam_signature",
}
BATCH_FIELDS = frozenset(
    {
        "format",
        "terminal_id",
        "batch_id",
        "created_at",
        "first_seq",
        "last_seq",
        "records",
        "uncertain",
    }
)
UNCERTAIN_FIELDS = frozenset({"terminal_seq", "card_serial", "card_tx_counter"})
_HEX = re.compile(r"[0-9A-F]*")  # with an even length: the spelling from_hex accepts


def batch_id_for(terminal_id: str, first_seq: int, last_seq: int) -> str:
    """Deterministic batch id, ``<terminal_id>:<first_seq>-<last_seq>``.

    Each record belongs to one batch only, so two different batches never share both their
    first and last record: the id names one set of records, and a re-send keeps it.
    """
    return f"{terminal_id}:{first_seq}-{last_seq}"


def key_id(public_key: Ed25519PublicKey) -> str:
    """Names a terminal key: first 8 bytes of SHA-256 over the raw 32-byte public key, hex."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return to_hex(hashlib.sha256(raw).digest()[:8])


def record_to_json(record: JournalRecord) -> dict[str, Any]:
    """A decided journal record as a batch record (``docs/batch-format.md``, record).

    Raises:
        RecordError: the record is not decided (PENDING and UNCERTAIN records are not uploaded).
    """
    if not record.state.decided or record.resolution is None or record.decided_at is None:
        raise RecordError(f"record {record.seq} is {record.state.value}: not uploadable yet")
    obj = record.intent.to_json()
    obj.update(
        {
            "terminal_id": record.terminal_id,
            "terminal_seq": record.seq,
            "outcome": record.state.value,
            "resolution": record.resolution.value,
            "abort_reason": record.abort_reason,
            "decided_at": format_utc(record.decided_at),
            "sam_signature": None if record.sam_signature is None else to_hex(record.sam_signature),
        }
    )
    return obj


def record_from_json(obj: Any) -> JournalRecord:
    """Inverse of :func:`record_to_json`, strict: unknown or missing fields are refused.

    A record that passes every check is built by :func:`_fast_record_from_json`; anything else
    goes through :func:`reference_record_from_json`, which refuses it with the precise reason
    (or, should the fast path have been too cautious, builds the same record).

    Raises:
        BatchFormatError: the object is not a valid record.
    """
    record = _fast_record_from_json(obj)
    if record is None:
        return reference_record_from_json(obj)
    return record


_KINDS = {kind.value: kind for kind in TransactionKind}
_STATES = {state.value: state for state in TransactionState if state.decided}
_RESOLUTIONS = {resolution.value: resolution for resolution in Resolution}
_UNITS = {unit.value: unit for unit in PurseUnit}
_COMMITTED_BY = frozenset({Resolution.CARD_CLOSE, Resolution.RECOVERED_FROM_CARD})


def _hex_bytes(text: Any) -> bytes | None:
    """:func:`from_hex` for a valid spelling, ``None`` for anything else."""
    if type(text) is not str or len(text) % 2 or _HEX.fullmatch(text) is None:
        return None
    return bytes.fromhex(text)


def _new(cls: type[Any], values: dict[str, Any]) -> Any:
    """An instance of the frozen dataclass ``cls`` holding ``values`` (every field, checked).

    Equal to ``cls(**values)`` once ``__post_init__`` has nothing to normalise: the callers
    below only get here when every check of ``__post_init__`` holds and every value is already
    in its normal form (tuples, UTC millisecond times), so skipping the constructor changes
    nothing but the cost.
    """
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def _fast_movement(obj: Any) -> PurseMovement | None:
    if type(obj) is not dict or obj.keys() != MOVEMENT_FIELDS:
        return None
    purse, unit = obj["purse"], obj["unit"]
    amount, before, after = obj["amount"], obj["balance_before"], obj["balance_after"]
    if (
        type(purse) is not str
        or not purse
        or type(unit) is not str
        or type(amount) is not int
        or type(before) is not int
        or type(after) is not int
        or before + amount != after
    ):
        return None
    purse_unit = _UNITS.get(unit)
    if purse_unit is None:
        return None
    return cast(
        PurseMovement,
        _new(
            PurseMovement,
            {
                "purse": purse,
                "unit": purse_unit,
                "amount": amount,
                "balance_before": before,
                "balance_after": after,
            },
        ),
    )


def _fast_record_from_json(obj: Any) -> JournalRecord | None:
    """The record when ``obj`` passes every check of :func:`reference_record_from_json`.

    Returns:
        ``None`` as soon as one check fails (or a value is of an unusual type): the reference
        decoder then decides, and words the refusal.
    """
    if type(obj) is not dict or obj.keys() != RECORD_FIELDS:
        return None
    kind, application = obj["kind"], obj["application"]
    counter, product, station = obj["card_tx_counter"], obj["product_code"], obj["station_id"]
    school, seq, terminal_id = obj["school_uai"], obj["terminal_seq"], obj["terminal_id"]
    outcome, resolution, reason = obj["outcome"], obj["resolution"], obj["abort_reason"]
    if (
        type(kind) is not str
        or type(application) is not str
        or not application
        or type(counter) is not int
        or not 0 <= counter <= CARD_COUNTER_MAX
        or not (product is None or type(product) is int)
        or not (station is None or type(station) is int)
        or not (school is None or type(school) is str)
        or type(seq) is not int
        or type(terminal_id) is not str
        or type(outcome) is not str
        or type(resolution) is not str
        or not (reason is None or type(reason) is str)
    ):
        return None
    transaction_kind = _KINDS.get(kind)
    state = _STATES.get(outcome)
    how = _RESOLUTIONS.get(resolution)
    serial = _hex_bytes(obj["card_serial"])
    occurred_at = fast_parse_utc(obj["occurred_at"])
    decided_at = fast_parse_utc(obj["decided_at"])
    if (
        transaction_kind is None
        or state is None
        or how is None
        or serial is None
        or not 1 <= len(serial) <= 16
        or occurred_at is None
        or decided_at is None
        # Before 1000, the constructors re-format the time through strftime, which may not
        # pad the year (then refuse it): their call.
        or occurred_at.year < 1000
        or decided_at.year < 1000
        or (state is TransactionState.COMMITTED) != (how in _COMMITTED_BY)
    ):
        return None
    raw_movements, raw_events = obj["movements"], obj["last_events"]
    if type(raw_movements) is not list or type(raw_events) is not list:
        return None
    movements = tuple(_fast_movement(m) for m in raw_movements)
    events = tuple(_hex_bytes(e) for e in raw_events)
    if any(m is None for m in movements) or None in events:
        return None
    written: bytes | None = None
    if obj["written_event"] is not None:
        written = _hex_bytes(obj["written_event"])
        if written is None:
            return None
    signature: bytes | None = None
    if obj["sam_signature"] is not None:
        signature = _hex_bytes(obj["sam_signature"])
        if signature is None:
            return None
    if how is Resolution.CARD_CLOSE and signature is None:
        return None
    intent = _new(
        TransactionIntent,
        {
            "kind": transaction_kind,
            "application": application,
            "card_serial": serial,
            "card_tx_counter": counter,
            "occurred_at": occurred_at,
            "movements": movements,
            "product_code": product,
            "station_id": station,
            "school_uai": school,
            "last_events": events,
            "written_event": written,
        },
    )
    return cast(
        JournalRecord,
        _new(
            JournalRecord,
            {
                "terminal_id": terminal_id,
                "seq": seq,
                "state": state,
                "intent": intent,
                "sam_signature": signature,
                "resolution": how,
                "abort_reason": reason,
                "decided_at": decided_at,
                "batch_id": None,
            },
        ),
    )


def reference_record_from_json(obj: Any) -> JournalRecord:
    """:func:`record_from_json` through the dataclass constructors: the reference rules.

    Raises:
        BatchFormatError: the object is not a valid record.
    """
    fields = expect_object(obj, RECORD_FIELDS, "record")
    # RECORD_FIELDS holds INTENT_FIELDS: the intent's names are checked already.
    intent = TransactionIntent.from_fields(fields)
    try:
        state = TransactionState(fields["outcome"])
        resolution = Resolution(fields["resolution"])
    except ValueError as exc:
        raise BatchFormatError(f"record: {exc}") from exc
    if not state.decided:
        raise BatchFormatError("record: outcome is COMMITTED or ABORTED")
    signature = fields["sam_signature"]
    record = JournalRecord(
        terminal_id=expect_str(fields["terminal_id"], "terminal_id"),
        seq=expect_int(fields["terminal_seq"], "terminal_seq"),
        state=state,
        intent=intent,
        sam_signature=None
        if signature is None
        else from_hex(signature, field_name="sam_signature"),
        resolution=resolution,
        abort_reason=expect_opt_str(fields["abort_reason"], "abort_reason"),
        decided_at=parse_utc(fields["decided_at"], field_name="decided_at"),
    )
    _check_outcome(record)
    return record


def _check_outcome(record: JournalRecord) -> None:
    committed = {Resolution.CARD_CLOSE, Resolution.RECOVERED_FROM_CARD}
    if (record.state is TransactionState.COMMITTED) != (record.resolution in committed):
        raise BatchFormatError(
            f"record {record.seq}: outcome {record.state.value} with resolution "
            f"{record.resolution.value if record.resolution else None}"
        )
    if record.resolution is Resolution.CARD_CLOSE and record.sam_signature is None:
        raise BatchFormatError(f"record {record.seq}: closed by the card without SAM signature")


@dataclass(frozen=True)
class UncertainRef:
    """A record the terminal could not decide yet, listed so the backend sees the gap.

    Attributes:
        terminal_seq: its terminal sequence.
        card_serial: the card concerned.
        card_tx_counter: the card counter read when the session opened.
    """

    terminal_seq: int
    card_serial: bytes
    card_tx_counter: int

    @classmethod
    def of(cls, record: JournalRecord) -> UncertainRef:
        """The reference to an undecided journal record."""
        return cls(record.seq, record.intent.card_serial, record.intent.card_tx_counter)

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON object."""
        return {
            "terminal_seq": self.terminal_seq,
            "card_serial": to_hex(self.card_serial),
            "card_tx_counter": self.card_tx_counter,
        }

    @classmethod
    def from_json(cls, obj: Any) -> UncertainRef:
        """Inverse of :meth:`to_json`."""
        fields = expect_object(obj, UNCERTAIN_FIELDS, "uncertain")
        return cls(
            terminal_seq=expect_int(fields["terminal_seq"], "uncertain.terminal_seq"),
            card_serial=from_hex(fields["card_serial"], field_name="uncertain.card_serial"),
            card_tx_counter=expect_int(fields["card_tx_counter"], "uncertain.card_tx_counter"),
        )


@dataclass(frozen=True)
class Batch:
    """Decided records of one terminal, in sequence order, plus the undecided ones it skipped.

    Attributes:
        terminal_id: the terminal.
        created_at: when the batch was built (UTC, kept to the millisecond).
        records: decided records, strictly increasing terminal sequences, all of this terminal.
        uncertain: every record of the terminal still PENDING or UNCERTAIN at build time.
    """

    terminal_id: str
    created_at: datetime
    records: tuple[JournalRecord, ...]
    uncertain: tuple[UncertainRef, ...] = ()

    def __post_init__(self) -> None:
        check_terminal_id(self.terminal_id)
        object.__setattr__(self, "created_at", normalise_utc(self.created_at))
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "uncertain", tuple(self.uncertain))
        if not self.records:
            raise RecordError("a batch holds at least one record")
        seqs = [r.seq for r in self.records]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise RecordError("batch records are in strictly increasing sequence order")
        for record in self.records:
            if record.terminal_id != self.terminal_id:
                raise RecordError(f"record {record.seq} belongs to {record.terminal_id}")
            if not record.state.decided:
                raise RecordError(f"record {record.seq} is {record.state.value}")
        if set(seqs) & {u.terminal_seq for u in self.uncertain}:
            raise RecordError("a record is both in the batch and listed uncertain")

    @property
    def first_seq(self) -> int:
        """Lowest terminal sequence in the batch."""
        return self.records[0].seq

    @property
    def last_seq(self) -> int:
        """Highest terminal sequence in the batch."""
        return self.records[-1].seq

    @property
    def batch_id(self) -> str:
        """Deterministic id, see :func:`batch_id_for`."""
        return batch_id_for(self.terminal_id, self.first_seq, self.last_seq)

    def to_json(self) -> dict[str, Any]:
        """The ``batch`` object of the wire form."""
        return {
            "format": FORMAT,
            "terminal_id": self.terminal_id,
            "batch_id": self.batch_id,
            "created_at": format_utc(self.created_at),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "records": [record_to_json(r) for r in self.records],
            "uncertain": [u.to_json() for u in self.uncertain],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Batch:
        """Inverse of :meth:`to_json`; checks the derived fields agree with the records.

        Raises:
            BatchFormatError: anything out of format.
        """
        fields = expect_object(obj, BATCH_FIELDS, "batch")
        if fields["format"] != FORMAT:
            raise BatchFormatError(f"batch: format {fields['format']!r} is not {FORMAT!r}")
        try:
            batch = cls(
                terminal_id=expect_str(fields["terminal_id"], "terminal_id"),
                created_at=parse_utc(fields["created_at"], field_name="created_at"),
                records=tuple(
                    record_from_json(r) for r in expect_list(fields["records"], "records")
                ),
                uncertain=tuple(
                    UncertainRef.from_json(u) for u in expect_list(fields["uncertain"], "uncertain")
                ),
            )
        except BatchFormatError:
            raise
        except RecordError as exc:
            raise BatchFormatError(f"batch: {exc}") from exc
        derived = {
            "batch_id": batch.batch_id,
            "first_seq": batch.first_seq,
            "last_seq": batch.last_seq,
        }
        for name, value in derived.items():
            if fields[name] != value:
                raise BatchFormatError(f"batch: {name} is {fields[name]!r}, records say {value!r}")
        return batch


@dataclass(frozen=True)
class BatchSummary:
    """What a receiver stores about a verified batch (:func:`verify_batch_summary`).

    Attributes:
        terminal_id: the terminal.
        batch_id: deterministic id, see :func:`batch_id_for`.
        first_seq: lowest terminal sequence in the batch.
        last_seq: highest terminal sequence in the batch.
        record_count: decided records in the batch.
    """

    terminal_id: str
    batch_id: str
    first_seq: int
    last_seq: int
    record_count: int

    @classmethod
    def of(cls, batch: Batch) -> BatchSummary:
        """The summary of a decoded batch."""
        return cls(
            batch.terminal_id, batch.batch_id, batch.first_seq, batch.last_seq, len(batch.records)
        )


def sign_batch(batch: Batch, private_key: Ed25519PrivateKey) -> bytes:
    """Encode and sign ``batch`` with the terminal's device key; returns the wire bytes."""
    payload = batch.to_json()
    signature = private_key.sign(canonical_json(payload))
    envelope = {
        "batch": payload,
        "signature": {
            "alg": SIGNATURE_ALG,
            "key_id": key_id(private_key.public_key()),
            "value": to_hex(signature),
        },
    }
    return canonical_json(envelope)


def verify_batch(data: bytes, public_key: Ed25519PublicKey) -> Batch:
    """Check the signature of a batch received as ``data``, then decode it.

    A body that passes every check of the typed fast path (:func:`_fast_envelope`) is built
    from it; anything else goes through :func:`_verify_batch_reference`, which refuses it with
    the precise reason (or, should the fast path have been too cautious, decodes it).

    Args:
        data: the wire bytes.
        public_key: the sending terminal's registered Ed25519 public key.

    Returns:
        The decoded batch.

    Raises:
        BatchSignatureError: signed by another key, or the signature does not verify.
        BatchFormatError: not canonical JSON of the documented shape.
    """
    envelope = _fast_envelope(data, public_key)
    if envelope is not None:
        batch = _batch_of(envelope.batch)
        if batch is not None:
            return batch
    return _verify_batch_reference(data, public_key)


def verify_batch_summary(data: bytes, public_key: Ed25519PublicKey) -> BatchSummary:
    """:func:`verify_batch` without building the records: what a receiver needs to store it.

    Accepts and refuses exactly what :func:`verify_batch` does, with the same errors; a valid
    body is only checked, not turned into dataclasses (the backend stores the bytes and its
    validation loop reads them again).

    Raises:
        BatchSignatureError: signed by another key, or the signature does not verify.
        BatchFormatError: not canonical JSON of the documented shape.
    """
    envelope = _fast_envelope(data, public_key)
    if envelope is None:
        return BatchSummary.of(_verify_batch_reference(data, public_key))
    batch = envelope.batch
    return BatchSummary(
        terminal_id=batch.terminal_id,
        batch_id=batch.batch_id,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        record_count=len(batch.records),
    )


def _verify_batch_reference(data: bytes, public_key: Ed25519PublicKey) -> Batch:
    """:func:`verify_batch` on the reference rules (stdlib JSON, then the dataclass checks)."""
    fast = _canonical_envelope(data)
    if fast is None:
        # Not provably canonical by the fast path: the reference path decides, and names
        # the exact reason (duplicate key, float, integer bound, not canonical...).
        envelope = expect_object(strict_json_loads(data), {"batch", "signature"}, "envelope")
        try:
            canonical = canonical_json(envelope)
        except RecordError as exc:  # an integer beyond 2**53 - 1
            raise BatchFormatError(f"batch: {exc}") from exc
        if canonical != data:
            raise BatchFormatError("the batch body is not canonical JSON")
        signed = canonical_json(envelope["batch"])
    else:
        envelope, signed = fast
    signature = expect_object(envelope["signature"], {"alg", "key_id", "value"}, "signature")
    if signature["alg"] != SIGNATURE_ALG:
        raise BatchSignatureError(f"signature algorithm {signature['alg']!r} is not Ed25519")
    if signature["key_id"] != key_id(public_key):
        raise BatchSignatureError(
            f"batch signed by key {signature['key_id']!r}, not this terminal's"
        )
    raw_signature = from_hex(signature["value"], field_name="signature.value")
    try:
        public_key.verify(raw_signature, signed)
    except InvalidSignature as exc:
        raise BatchSignatureError("batch signature does not verify") from exc
    return Batch.from_json(envelope["batch"])


# -- Fast path: one typed, C-speed decode (msgspec) ----------------------------------------------
#
# The wire structures below mirror the documented shapes field for field, in sorted order (so
# that re-encoding one gives canonical JSON). Decoding into them checks in C what the reference
# checks one value at a time: exact field names (unknown and missing fields refused), types
# (a boolean or a float is not an integer), enumerated values, integer bounds, non-empty
# strings, serial lengths. What is left (upper-case hex, timestamps, balances, outcomes,
# sequence order, derived batch fields) is checked by :func:`_wire_batch_holds`.

_SafeInt = Annotated[int, Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
_NonEmpty = Annotated[str, Meta(min_length=1)]
# 1 to 16 bytes; that it is hex (so 2 characters a byte) is checked with the other hex strings.
_Serial = Annotated[str, Meta(min_length=2, max_length=32)]


class _WireMovement(Struct, forbid_unknown_fields=True, gc=False):
    amount: _SafeInt
    balance_after: _SafeInt
    balance_before: _SafeInt
    purse: _NonEmpty
    unit: PurseUnit


class _WireRecord(Struct, forbid_unknown_fields=True, gc=False):
    abort_reason: str | None
    application: _NonEmpty
    card_serial: _Serial
    card_tx_counter: Annotated[int, Meta(ge=0, le=CARD_COUNTER_MAX)]
    decided_at: str
    kind: TransactionKind
    last_events: list[str]
    movements: list[_WireMovement]
    occurred_at: str
    outcome: TransactionState
    product_code: _SafeInt | None
    resolution: Resolution
    sam_signature: str | None
    school_uai: str | None
    station_id: _SafeInt | None
    terminal_id: str
    terminal_seq: _SafeInt
    written_event: str | None


class _WireUncertain(Struct, forbid_unknown_fields=True, gc=False):
    card_serial: str
    card_tx_counter: _SafeInt
    terminal_seq: _SafeInt


class _WireBatch(Struct, forbid_unknown_fields=True, gc=False):
    batch_id: str
    created_at: str
    first_seq: _SafeInt
    format: str
    last_seq: _SafeInt
    records: list[_WireRecord]
    terminal_id: str
    uncertain: list[_WireUncertain]


class _WireSignature(Struct, forbid_unknown_fields=True, gc=False):
    alg: str
    key_id: str
    value: str


class _WireEnvelope(Struct, forbid_unknown_fields=True, gc=False):
    batch: _WireBatch
    signature: _WireSignature


_ENVELOPE_DECODER = msgspec.json.Decoder(_WireEnvelope)
_ENCODER = msgspec.json.Encoder()
# b'{"batch":' + batch + b',"signature":' + signature + b'}'
_ENVELOPE_HEAD = len(b'{"batch":')
_ENVELOPE_TAIL = len(b',"signature":}')

_HEX_DIGITS = b"0123456789ABCDEF"
# Timestamps, checked all at once: ``","``-terminated, their digits mapped to ``0``, they must
# spell this template ``len(stamps)`` times; the columns of some digits are then read by slicing.
_UTC_TEMPLATE = b"0000-00-00T00:00:00.000Z,"
_UTC_WIDTH = len(_UTC_TEMPLATE)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_HOUR_24_TO_29 = re.compile(rb"T2[4-9]")  # "T" is only ever before the hour
_DAY = itemgetter(slice(None, len("2025-09-01")))


def _fast_envelope(data: bytes, public_key: Ed25519PublicKey) -> _WireEnvelope | None:
    """The decoded envelope when ``data`` passes every check of :func:`verify_batch`.

    - A body holding a backslash (an escape) is left to the reference: without escapes, a
      string's characters are its bytes, and both encoders write them unchanged.
    - The typed decode refuses invalid UTF-8 and JSON, floats, NaN, integers beyond
      ±(2^53 - 1) and every wrong type, name or value the wire structures exclude.
    - Re-encoding the decoded envelope gives its canonical form (sorted fields, no spaces, the
      same spelling of strings and integers as :func:`canonical_json`); it must be ``data``
      byte for byte, which also rules out duplicate keys, other spellings and whitespace. The
      ``batch`` member of ``data`` is then exactly the canonical bytes the terminal signed.

    Returns:
        ``None`` as soon as one check fails: the reference then decides, and words the refusal.
    """
    if b"\\" in data:
        return None
    try:
        envelope = _ENVELOPE_DECODER.decode(data)
    except (msgspec.DecodeError, ValueError):  # ValidationError; UnicodeDecodeError
        return None
    if _ENCODER.encode(envelope) != data or not _wire_batch_holds(envelope.batch):
        return None
    signature = envelope.signature
    if signature.alg != SIGNATURE_ALG or signature.key_id != key_id(public_key):
        return None
    raw_signature = _hex_bytes(signature.value)
    if raw_signature is None:
        return None
    signed_end = len(data) - _ENVELOPE_TAIL - len(_ENCODER.encode(signature))
    try:
        public_key.verify(raw_signature, data[_ENVELOPE_HEAD:signed_end])
    except InvalidSignature:
        return None
    return envelope


def _wire_batch_holds(batch: _WireBatch) -> bool:
    """``True`` when the decoded batch passes every check the reference makes beyond its types.

    The checks of :meth:`Batch.from_json`, :func:`reference_record_from_json` and the dataclass
    constructors that the wire structures cannot express: upper-case hex, timestamps, balances,
    outcome and resolution, sequence order, one terminal, derived batch fields.
    """
    records = batch.records
    terminal_id = batch.terminal_id
    if (
        batch.format != FORMAT
        or not records
        or TERMINAL_ID_PATTERN.fullmatch(terminal_id) is None
        or batch.first_seq != records[0].terminal_seq
        or batch.last_seq != records[-1].terminal_seq
        or batch.batch_id != batch_id_for(terminal_id, batch.first_seq, batch.last_seq)
    ):
        return False
    hex_texts: list[str] = []
    stamps = [batch.created_at]
    previous: int | None = None
    for record in records:
        seq = record.terminal_seq
        if record.terminal_id != terminal_id or (previous is not None and seq <= previous):
            return False
        previous = seq
        state, how, signature = record.outcome, record.resolution, record.sam_signature
        if state is TransactionState.COMMITTED:
            if how is Resolution.CARD_CLOSE:
                if signature is None:
                    return False
            elif how is not Resolution.RECOVERED_FROM_CARD:
                return False
        elif (
            state is not TransactionState.ABORTED
            or how is Resolution.CARD_CLOSE
            or how is Resolution.RECOVERED_FROM_CARD
        ):
            return False
        for movement in record.movements:
            if movement.balance_before + movement.amount != movement.balance_after:
                return False
        hex_texts.append(record.card_serial)
        hex_texts += record.last_events
        if signature is not None:
            hex_texts.append(signature)
        if record.written_event is not None:
            hex_texts.append(record.written_event)
        stamps.append(record.occurred_at)
        stamps.append(record.decided_at)
    if batch.uncertain:
        seqs = {record.terminal_seq for record in records}
        if any(uncertain.terminal_seq in seqs for uncertain in batch.uncertain):
            return False
        hex_texts += [uncertain.card_serial for uncertain in batch.uncertain]
    return _all_upper_hex(hex_texts) and _all_utc(stamps)


def _all_upper_hex(texts: list[str]) -> bool:
    """``True`` when :func:`from_hex` accepts every text: upper-case hex digits, even length."""
    joined = "".join(texts)
    if not joined.isascii() or joined.encode("ascii").translate(None, _HEX_DIGITS):
        return False
    try:  # hex digits only, so the spaces are the separators: fails on an odd-length text
        bytes.fromhex(" ".join(texts))
    except ValueError:
        return False
    return True


def _all_utc(stamps: list[str]) -> bool:
    """``True`` when :func:`parse_utc` accepts every stamp, of a year from 1000.

    - The template fixes every character: ASCII digits where it has ``0``, its punctuation
      elsewhere. It holds one comma per stamp, as many as the join wrote, so the commas are
      exactly the separators and each stamp is 24 characters of the template.
    - Columns (``raw[i::25]``) give the same digit of every stamp: hour tens 0-2 (and no hour
      24-29), minute and second tens 0-5, and no year below 1000 (left to the reference: the
      record constructors re-format such years through ``strftime``, which may not pad them).
    - The calendar checks each distinct day once (month 1-12, no 30 February).
    """
    raw = (",".join(stamps) + ",").encode("utf-8", "surrogatepass")
    if (
        raw.translate(_DIGITS_TO_ZERO) != _UTC_TEMPLATE * len(stamps)
        or b"0" in raw[0::_UTC_WIDTH]
        or raw[11::_UTC_WIDTH].translate(None, b"012")
        or _HOUR_24_TO_29.search(raw) is not None
        or raw[14::_UTC_WIDTH].translate(None, b"012345")
        or raw[17::_UTC_WIDTH].translate(None, b"012345")
    ):
        return False
    try:
        for day in set(map(_DAY, stamps)):
            date.fromisoformat(day)
    except ValueError:
        return False
    return True


def _batch_of(wire: _WireBatch) -> Batch | None:
    """The :class:`Batch` of a batch :func:`_fast_envelope` accepted, built without re-checking.

    Every value is already checked and in normal form, so the instances are filled directly
    (see :func:`_new`); they equal what the constructors build.

    Returns:
        ``None`` should a value still not convert (a check above missed it): the reference then
        decides.
    """
    utc = datetime.fromisoformat
    fromhex = bytes.fromhex
    try:
        records = tuple(
            _new(
                JournalRecord,
                {
                    "terminal_id": record.terminal_id,
                    "seq": record.terminal_seq,
                    "state": record.outcome,
                    "intent": _new(
                        TransactionIntent,
                        {
                            "kind": record.kind,
                            "application": record.application,
                            "card_serial": fromhex(record.card_serial),
                            "card_tx_counter": record.card_tx_counter,
                            "occurred_at": utc(record.occurred_at),
                            "movements": tuple(
                                _new(
                                    PurseMovement,
                                    {
                                        "purse": movement.purse,
                                        "unit": movement.unit,
                                        "amount": movement.amount,
                                        "balance_before": movement.balance_before,
                                        "balance_after": movement.balance_after,
                                    },
                                )
                                for movement in record.movements
                            ),
                            "product_code": record.product_code,
                            "station_id": record.station_id,
                            "school_uai": record.school_uai,
                            "last_events": tuple(fromhex(event) for event in record.last_events),
                            "written_event": None
                            if record.written_event is None
                            else fromhex(record.written_event),
                        },
                    ),
                    "sam_signature": None
                    if record.sam_signature is None
                    else fromhex(record.sam_signature),
                    "resolution": record.resolution,
                    "abort_reason": record.abort_reason,
                    "decided_at": utc(record.decided_at),
                    "batch_id": None,
                },
            )
            for record in wire.records
        )
        uncertain = tuple(
            _new(
                UncertainRef,
                {
                    "terminal_seq": ref.terminal_seq,
                    "card_serial": fromhex(ref.card_serial),
                    "card_tx_counter": ref.card_tx_counter,
                },
            )
            for ref in wire.uncertain
        )
        created_at = utc(wire.created_at)
    except ValueError:
        return None
    return cast(
        Batch,
        _new(
            Batch,
            {
                "terminal_id": wire.terminal_id,
                "created_at": created_at,
                "records": records,
                "uncertain": uncertain,
            },
        ),
    )


# Finding an integer token of 16 digits or more (2**53 - 1 has 16) where canonical JSON puts
# values (after ``:``, ``,`` or ``[``): digits are mapped to ``0`` and those three to ``:``, then
# two plain searches. Strings may match too (``"a:1234567890123456"``): a match only sends the
# body to the exact, slower check, so a false positive costs time, never correctness.
_LONG_INTEGER_TABLE = bytes.maketrans(b"123456789,[", b"000000000::")
_LONG_INTEGERS = (b":" + b"0" * 16, b":-" + b"0" * 16)


def _may_hold_long_integer(data: bytes) -> bool:
    mapped = data.translate(_LONG_INTEGER_TABLE)
    return any(token in mapped for token in _LONG_INTEGERS)


def _refuse_constant(text: str) -> Any:
    raise BatchFormatError(f"floats are not allowed ({text})")


def _canonical_envelope(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The envelope and the canonical bytes of its ``batch``, when ``data`` is provably valid.

    One C-speed pass instead of the reference checks, accepting only what they accept:

    - floats and NaN/Infinity are refused by the parser hooks (only called on such tokens);
    - duplicate keys cannot survive: the parsed object re-encodes shorter than ``data``;
    - integers beyond ±(2^53 - 1) have 16 digits or more: :func:`_may_hold_long_integer`;
    - the canonical form of the envelope is ``{"batch":B,"signature":S}`` with ``B`` and ``S``
      the canonical forms of its members, compared byte for byte with ``data``; ``B`` is then
      exactly what the terminal signed, so it is not encoded a second time.

    Returns:
        ``None`` whenever any of this does not hold: the caller then runs the reference
        checks, which refuse the body with the precise reason.
    """
    if _may_hold_long_integer(data):
        return None
    try:
        envelope = json.loads(
            data.decode("utf-8"), parse_float=_refuse_constant, parse_constant=_refuse_constant
        )
        if type(envelope) is not dict or envelope.keys() != {"batch", "signature"}:
            return None
        batch = json.dumps(
            envelope["batch"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        signature = json.dumps(
            envelope["signature"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except (ValueError, RecursionError, BatchFormatError):
        return None  # UnicodeError and JSONDecodeError are ValueErrors
    if len(data) != len(batch) + len(signature) + 23 or data != b"".join(
        (b'{"batch":', batch, b',"signature":', signature, b"}")
    ):
        return None
    return envelope, batch


def strict_json_loads(data: bytes) -> Any:
    """Parse UTF-8 JSON refusing duplicate keys, floats and NaN/Infinity.

    Raises:
        BatchFormatError: anything else than such JSON.
    """

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                raise BatchFormatError(f"duplicate JSON key {key!r}")
            obj[key] = value
        return obj

    def no_float(text: str) -> Any:
        raise BatchFormatError(f"floats are not allowed ({text})")

    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=pairs,
            parse_float=no_float,
            parse_constant=no_float,
        )
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; so is Python's refusal of an
        # integer of more than 4300 digits, which is not a JSONDecodeError.
        raise BatchFormatError(f"not UTF-8 JSON: {str(exc)[:200]}") from exc


class AckStatus(Enum):
    """The backend's answer to one batch."""

    ACCEPTED = "accepted"  # stored now
    DUPLICATE = "duplicate"  # already stored earlier: the re-send changed nothing
    REJECTED = "rejected"  # refused for good (bad signature, unknown terminal): keep the batch

    @property
    def done(self) -> bool:
        """``True`` when the terminal may consider the batch uploaded."""
        return self is not AckStatus.REJECTED


@dataclass(frozen=True)
class Ack:
    """The backend's acknowledgement of a batch (``docs/batch-format.md``, acknowledgement).

    Attributes:
        batch_id: the batch acknowledged; the terminal only trusts an ack naming its batch.
        status: accepted, duplicate or rejected.
        detail: a human-readable reason, mainly for rejections.
    """

    batch_id: str
    status: AckStatus
    detail: str | None = None

    def encode(self) -> bytes:
        """Canonical JSON bytes of the acknowledgement."""
        return canonical_json(
            {
                "format": ACK_FORMAT,
                "batch_id": self.batch_id,
                "status": self.status.value,
                "detail": self.detail,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Ack:
        """Parse an acknowledgement.

        Raises:
            BatchFormatError: not a ``regioncard.ack/1`` object.
        """
        fields = expect_object(
            strict_json_loads(data), {"format", "batch_id", "status", "detail"}, "ack"
        )
        if fields["format"] != ACK_FORMAT:
            raise BatchFormatError(f"ack: format {fields['format']!r} is not {ACK_FORMAT!r}")
        try:
            status = AckStatus(fields["status"])
        except ValueError as exc:
            raise BatchFormatError(f"ack: {exc}") from exc
        return cls(
            batch_id=expect_str(fields["batch_id"], "ack.batch_id"),
            status=status,
            detail=expect_opt_str(fields["detail"], "ack.detail"),
        )
