"""The per-record work that needs no database: signing digest, SAM signature, card pseudonym.

It depends only on the record and the keys, never on what the loop has seen before, so it can
run wherever the batch already is: the upload worker does it right after accepting a batch and
stores the result beside the raw bytes (``upload_batches.prepared``), in parallel with the
validation loop, which then only reads it. A batch stored without it (no preparer configured,
or stored before this column existed) is prepared by the loop itself, with the same code.

Per record, in batch order, one array (``PREPARED_FORMAT``)::

    [digest, sam, sam_serial, sam_counter, detail, pseudonym]

- ``digest``: first 32 hex digits of SHA-256 over the signing bytes (sequence reuse check);
- ``sam``: ``0`` no SAM signature, ``1`` verified, ``2`` does NOT verify (forged);
- ``sam_serial`` / ``sam_counter``: of the verified signature, else ``null``;
- ``detail``: why it did not verify, else ``null``;
- ``pseudonym``: the card's keyed pseudonym for the record's ``occurred_at``.

Keys: the derived per-SAM verification keys and the pseudonyms are cached in this worker's
memory only (the master keys stay in PKCS#11 behind the providers).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from backend.validation.providers import CardPseudonymizer, TraceKeyProvider
from card_schema.errors import VerificationError
from card_schema.traceability import (
    TraceableSignature,
    verify_traceable_signature,
    verify_traceable_signatures,
)
from card_schema.uploads.signing import sam_signature_inputs, wire_record_signing_bytes

PREPARED_FORMAT = "regioncard.prepared/1"
_JSON_DECODE = msgspec.json.Decoder().decode

SAM_NONE = 0
SAM_VERIFIED = 1
SAM_FORGED = 2

Prepared = list[Any]  # [digest, sam, sam_serial, sam_counter, detail, pseudonym]


class PreparedMismatch(ValueError):
    """A stored preparation does not describe the batch it is stored with."""


class RecordPreparer:
    """Prepares the records of verified batches (see the module docstring).

    Args:
        trace_keys: SAM traceable-signature keys (``KeyService`` in production).
        pseudonyms: card pseudonyms (``KeyService`` in production).
    """

    def __init__(self, trace_keys: TraceKeyProvider, pseudonyms: CardPseudonymizer) -> None:
        """See the class docstring."""
        self._trace_keys = trace_keys
        self._pseudonyms = pseudonyms
        self._sam_keys: dict[bytes, bytes] = {}  # derived per-SAM keys: memory only
        self._pseudonym_cache: dict[tuple[str, int], str] = {}
        self._period_cache: dict[str, int] = {}  # "YYYY-MM-DD" -> rotation period

    def sam_key(self, sam_serial: bytes) -> bytes:
        """The derived verification key of a SAM, asked once to the key provider then cached."""
        key = self._sam_keys.get(sam_serial)
        if key is None:
            key = self._sam_keys[sam_serial] = self._trace_keys.sam_trace_key(sam_serial)
        return key

    def pseudonym(self, card_serial_hex: str, occurred_at: str) -> str:
        """The card's pseudonym at the canonical timestamp ``occurred_at`` (cached per card and
        rotation period; the period per day)."""
        day = occurred_at[:10]
        period = self._period_cache.get(day)
        if period is None:
            # Periods are whole days long (rotation in days from a midnight epoch), so a day
            # never straddles two periods.
            period = self._period_cache[day] = self._pseudonyms.pseudonym_period(
                datetime.fromisoformat(occurred_at)
            )
        key = (card_serial_hex, period)
        value = self._pseudonym_cache.get(key)
        if value is None:
            if len(self._pseudonym_cache) > 2_000_000:
                self._pseudonym_cache.clear()
            value = self._pseudonym_cache[key] = self._pseudonyms.pseudonym(
                bytes.fromhex(card_serial_hex), datetime.fromisoformat(occurred_at)
            )
        return value

    def prepare(self, records: list[dict[str, Any]]) -> list[Prepared]:
        """The preparation of each of ``records`` (a verified batch's ``records``, as JSON).

        The SAM signatures are checked per SAM in one batch
        (:func:`card_schema.traceability.verify_traceable_signatures`).
        """
        digests: list[str] = []
        pseudonyms: list[str] = []
        by_sam: dict[bytes, tuple[list[int], list[tuple[bytes, bytes]]]] = {}
        legacy: dict[int, bytes] = {}  # index -> input signed before Calypso PSO framing
        for index, record in enumerate(records):
            signed = wire_record_signing_bytes(record)
            digests.append(hashlib.sha256(signed).hexdigest()[:32])
            pseudonyms.append(self.pseudonym(record["card_serial"], record["occurred_at"]))
            sam_hex = record["sam_signature"]
            if sam_hex is not None:
                raw = bytes.fromhex(sam_hex)
                indexes, items = by_sam.setdefault(raw[:4], ([], []))
                indexes.append(index)
                inputs = sam_signature_inputs(signed)
                items.append((raw, inputs[0]))
                if len(inputs) > 1:
                    legacy[index] = inputs[1]
        checks: list[TraceableSignature | VerificationError | None] = [None] * len(records)
        for serial, (indexes, items) in by_sam.items():
            key = self.sam_key(serial)
            results = verify_traceable_signatures(key, items)
            for index, (raw, _), result in zip(indexes, items, results, strict=True):
                if isinstance(result, VerificationError) and index in legacy:
                    try:
                        result = verify_traceable_signature(key, raw, legacy[index])
                    except VerificationError as exc:
                        result = exc
                checks[index] = result
        out: list[Prepared] = []
        for digest, pseudonym, check in zip(digests, pseudonyms, checks, strict=True):
            if check is None:
                out.append([digest, SAM_NONE, None, None, None, pseudonym])
            elif isinstance(check, VerificationError):
                out.append([digest, SAM_FORGED, None, None, str(check), pseudonym])
            else:
                serial_hex = check.sam_serial.hex().upper()
                out.append([digest, SAM_VERIFIED, serial_hex, check.sam_counter, None, pseudonym])
        return out

    def prepare_body(self, body: bytes) -> bytes:
        """The stored form of the preparation of a verified batch's wire bytes."""
        return encode_prepared(self.prepare(_JSON_DECODE(body)["batch"]["records"]))


def encode_prepared(prepared: list[Prepared]) -> bytes:
    """``{"format": PREPARED_FORMAT, "records": [...]}`` as compact JSON."""
    return msgspec.json.encode({"format": PREPARED_FORMAT, "records": prepared})


def decode_prepared(data: bytes, records: list[dict[str, Any]]) -> list[Prepared]:
    """The stored preparation of ``records``.

    Raises:
        PreparedMismatch: another format, or not one entry per record (the loop then prepares
            the batch itself).
    """
    try:
        obj = _JSON_DECODE(data)
    except msgspec.DecodeError as exc:
        raise PreparedMismatch(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != PREPARED_FORMAT:
        raise PreparedMismatch(f"not {PREPARED_FORMAT}")
    prepared = obj.get("records")
    if not isinstance(prepared, list) or len(prepared) != len(records):
        raise PreparedMismatch("not one entry per record")
    return prepared
