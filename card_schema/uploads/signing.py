"""What the SAM signs for one card session: the record's signing bytes.

Defined once here for both sides: the terminal asks its SAM for a traceable signature
(:func:`card_schema.traceability.traceable_signature`) over :func:`intent_signing_bytes` just
before Close Secure Session; the backend's validation loop recomputes the same bytes from the
uploaded record and checks them with :func:`card_schema.traceability.verify_traceable_signature`.
Specification: ``docs/batch-format.md``, section "What the SAM signs".

The signing bytes are the canonical JSON (RFC 8785 for these values) of the transaction fields
of the record, :data:`SIGNED_FIELDS`, and nothing else. Left out on purpose:

- ``outcome``, ``resolution``, ``decided_at``, ``abort_reason``: not known when the SAM signs
  (the signature is asked before the close response arrives);
- ``sam_signature``: the signature itself;
- ``last_events``: what the card's log held before the session, evidence read at the tap and
  used for recovery, not part of the charged transaction (the batch's Ed25519 signature covers it).

What goes into the SAM's PSO Compute Signature is :func:`sam_signature_input` of those bytes:
the bytes themselves when they fit one Calypso PSO Compute Signature message (198 bytes), else
their SHA-256 (a record carrying a card log record in hex is about 430 bytes, so in practice the
digest). Before Calypso framing the limit was 255 bytes, and 199 while the terminal reserved 7
bytes for the SAM's trace data instead of the 8 of full-serial mode: :func:`sam_signature_inputs`
gives both inputs for the lengths where the rules differ, and the backend accepts either.
"""

from __future__ import annotations

import hashlib
from operator import itemgetter
from typing import Any

import msgspec

from card_schema.uploads.records import JournalRecord, TransactionIntent, canonical_json

PSO_MAX_DATA = 198
"""Signing bytes given to the SAM as they are (longer ones: their SHA-256). Calypso's PSO Compute
Signature in SAM traceability mode takes a 206-byte message, 8 of which the SAM's trace data takes
in full-serial mode (its serial and counter first)."""

LEGACY_PSO_MAX_DATA = 255
"""The largest signing bytes ever signed as they are: 255 before the PSO frame became Calypso's,
then 199 while 7 bytes were reserved for the trace data (batches stored then: 199 to 255 signing
bytes may have been signed as they are)."""

SIGNED_FIELDS: tuple[str, ...] = (
    "terminal_id",
    "terminal_seq",
    "kind",
    "application",
    "card_serial",
    "card_tx_counter",
    "occurred_at",
    "movements",
    "product_code",
    "station_id",
    "school_uai",
    "written_event",
)


def intent_signing_bytes(terminal_id: str, terminal_seq: int, intent: TransactionIntent) -> bytes:
    """The bytes a terminal has its SAM sign for the session ``terminal_seq``.

    Args:
        terminal_id: the terminal.
        terminal_seq: the journal sequence allocated to the intent.
        intent: what the terminal asks the card to commit.

    Returns:
        Canonical JSON of the :data:`SIGNED_FIELDS`.
    """
    fields = intent.to_json()
    fields["terminal_id"] = terminal_id
    fields["terminal_seq"] = terminal_seq
    return canonical_json({name: fields[name] for name in SIGNED_FIELDS})


def record_signing_bytes(record: JournalRecord) -> bytes:
    """The signing bytes of a journal record (same as at intent time, whatever its outcome)."""
    return intent_signing_bytes(record.terminal_id, record.seq, record.intent)


def wire_record_signing_bytes(record: dict[str, Any]) -> bytes:
    """The signing bytes of a record as it appears in a batch's JSON (the backend's hot path).

    Args:
        record: one element of ``batch.records`` from a batch that
            :func:`card_schema.uploads.batch.verify_batch` accepted (so it holds only JSON
            values of the documented types: no floats, integers within ±(2^53 − 1)), where
            the canonical encoding is plain sorted-key JSON and needs no re-checking.

    Returns:
        The same bytes as :func:`record_signing_bytes` of the decoded record.
    """
    # msgspec writes the same bytes as the json module with sorted keys, compact separators
    # and ensure_ascii=False (every code point, escapes and large integers included:
    # tests/card_schema/test_uploads_signing.py), at a third of the cost.
    return _SORTED_JSON.encode(dict(zip(SIGNED_FIELDS, _signed_values(record), strict=True)))


_SORTED_JSON = msgspec.json.Encoder(order="sorted")
_signed_values = itemgetter(*SIGNED_FIELDS)


def sam_signature_input(signing_bytes: bytes) -> bytes:
    """The data given to PSO Compute Signature (and verified by the backend) for a record.

    Args:
        signing_bytes: :func:`intent_signing_bytes` / :func:`wire_record_signing_bytes`.

    Returns:
        ``signing_bytes`` when at most :data:`PSO_MAX_DATA` bytes long, else their SHA-256.
    """
    if len(signing_bytes) <= PSO_MAX_DATA:
        return signing_bytes
    return hashlib.sha256(signing_bytes).digest()


def sam_signature_inputs(signing_bytes: bytes) -> tuple[bytes, ...]:
    """Every input a SAM may have signed for these signing bytes: :func:`sam_signature_input`,
    then, for 199 to 255 bytes only, the bytes themselves as signed by earlier terminals
    (:data:`LEGACY_PSO_MAX_DATA`), so that batches stored then stay verifiable."""
    current = sam_signature_input(signing_bytes)
    if PSO_MAX_DATA < len(signing_bytes) <= LEGACY_PSO_MAX_DATA:
        return (current, signing_bytes)
    return (current,)


def intent_sam_input(terminal_id: str, terminal_seq: int, intent: TransactionIntent) -> bytes:
    """What a terminal gives its SAM's PSO Compute Signature for the session ``terminal_seq``.

    :func:`sam_signature_input` of :func:`intent_signing_bytes`: the one rule every terminal
    (gate, canteen till, bike-shelter door) signs with and the backend verifies with.
    """
    return sam_signature_input(intent_signing_bytes(terminal_id, terminal_seq, intent))
