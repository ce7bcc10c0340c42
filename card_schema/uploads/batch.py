"""The upload batch: canonical JSON signed with the terminal's Ed25519 device key.

The format is specified for the backend in ``docs/batch-format.md`` (format
``regioncard.batch/1``); this module is its reference implementation. It is pure (no IO, no
database) and keys are passed in, never read from globals.

Wire form (canonical JSON, see :func:`card_schema.uploads.records.canonical_json`)::

    {"batch":{...},"signature":{"alg":"Ed25519","key_id":"<16 hex>","value":"<128 hex>"}}

The signed bytes are the canonical JSON of the ``batch`` object alone. The whole body is itself
canonical, so the same batch is always the same bytes, which is what makes a re-send idempotent.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from card_schema.uploads.errors import BatchFormatError, BatchSignatureError, RecordError
from card_schema.uploads.records import (
    INTENT_FIELDS,
    JournalRecord,
    Resolution,
    TransactionIntent,
    TransactionState,
    canonical_json,
    check_terminal_id,
    expect_int,
    expect_list,
    expect_object,
    expect_opt_str,
    expect_str,
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

    Raises:
        BatchFormatError: the object is not a valid record.
    """
    fields = expect_object(obj, RECORD_FIELDS, "record")
    intent = TransactionIntent.from_json({name: fields[name] for name in INTENT_FIELDS})
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

    Args:
        data: the wire bytes.
        public_key: the sending terminal's registered Ed25519 public key.

    Returns:
        The decoded batch.

    Raises:
        BatchSignatureError: signed by another key, or the signature does not verify.
        BatchFormatError: not canonical JSON of the documented shape.
    """
    envelope = expect_object(strict_json_loads(data), {"batch", "signature"}, "envelope")
    try:
        canonical = canonical_json(envelope)
    except RecordError as exc:  # an integer beyond 2**53 - 1
        raise BatchFormatError(f"batch: {exc}") from exc
    if canonical != data:
        raise BatchFormatError("the batch body is not canonical JSON")
    signature = expect_object(envelope["signature"], {"alg", "key_id", "value"}, "signature")
    if signature["alg"] != SIGNATURE_ALG:
        raise BatchSignatureError(f"signature algorithm {signature['alg']!r} is not Ed25519")
    if signature["key_id"] != key_id(public_key):
        raise BatchSignatureError(
            f"batch signed by key {signature['key_id']!r}, not this terminal's"
        )
    raw_signature = from_hex(signature["value"], field_name="signature.value")
    try:
        public_key.verify(raw_signature, canonical_json(envelope["batch"]))
    except InvalidSignature as exc:
        raise BatchSignatureError("batch signature does not verify") from exc
    return Batch.from_json(envelope["batch"])


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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BatchFormatError(f"not UTF-8 JSON: {exc}") from exc


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
