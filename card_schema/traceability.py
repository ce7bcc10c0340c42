"""Traceable signatures: how a SAM signs a transaction record and how the backend checks it.

A SAM answers PSO Compute Signature with ``SAM serial (4) || SAM counter (3) || signature (8)``,
the counter going up by one at every signature. The signature is
``CMAC(K_SAM, 0x50 || serial || counter || record)[:8]`` under
``K_SAM = AN10922(trace master key, "SAM" || serial)``. Whoever holds the trace master key (the
backend's HSM) can recompute ``K_SAM`` for any SAM and verify; a record altered, a counter changed
or a serial swapped makes the check fail. The emulated SAM signs with :func:`traceable_signature`
and the backend verifies with :func:`verify_traceable_signature`: one definition for both sides
(docs/secure-session.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from card_schema.crypto import aes_cmac, aes_cmac_many, diversify_an10922
from card_schema.errors import VerificationError

SIGNATURE_SIZE = 8  # truncated CMAC, as session signatures and SV MACs
SAM_SERIAL_SIZE = 4
SAM_COUNTER_SIZE = 3
SIGNED_SIZE = SAM_SERIAL_SIZE + SAM_COUNTER_SIZE + SIGNATURE_SIZE
_TRACEABLE = b"\x50"  # domain separation from the session and SV MACs


@dataclass(frozen=True)
class TraceableSignature:
    """A parsed traceable signature."""

    sam_serial: bytes
    sam_counter: int
    signature: bytes

    @classmethod
    def parse(cls, signed: bytes) -> TraceableSignature:
        """Split the 15 bytes a SAM answered.

        Raises:
            VerificationError: wrong size.
        """
        if len(signed) != SIGNED_SIZE:
            raise VerificationError(f"a traceable signature is {SIGNED_SIZE} bytes")
        serial_end = SAM_SERIAL_SIZE
        counter_end = serial_end + SAM_COUNTER_SIZE
        return cls(
            signed[:serial_end],
            int.from_bytes(signed[serial_end:counter_end], "big"),
            signed[counter_end:],
        )


def sam_trace_key(trace_master_key: bytes, sam_serial: bytes) -> bytes:
    """The traceable-signature key of one SAM, from the trace master key (AN10922)."""
    return diversify_an10922(trace_master_key, b"SAM" + sam_serial)


def traceable_signature(
    sam_key: bytes, sam_serial: bytes, sam_counter: int, record: bytes
) -> bytes:
    """Signature of a transaction record: ``CMAC(K_SAM, 50 || serial || counter || record)[:8]``."""
    return aes_cmac(sam_key, _signed_message(sam_serial, sam_counter, record))[:SIGNATURE_SIZE]


def _signed_message(sam_serial: bytes, sam_counter: int, record: bytes) -> bytes:
    """What the SAM MACs: ``50 || serial || counter || record``."""
    return _TRACEABLE + sam_serial + sam_counter.to_bytes(SAM_COUNTER_SIZE, "big") + record


def verify_traceable_signature(sam_key: bytes, signed: bytes, record: bytes) -> TraceableSignature:
    """Check a traceable signature over ``record`` in constant time.

    Args:
        sam_key: the SAM's traceable-signature key (:func:`sam_trace_key`).
        signed: serial || counter || signature as the SAM answered them.
        record: the transaction record that was signed.

    Returns:
        The parsed signature (serial and counter, for deduplication and gap detection).

    Raises:
        VerificationError: the signature does not verify.
    """
    parsed = TraceableSignature.parse(signed)
    expected = traceable_signature(sam_key, parsed.sam_serial, parsed.sam_counter, record)
    if not hmac.compare_digest(expected, parsed.signature):
        raise VerificationError("traceable signature does not verify")
    return parsed


def verify_traceable_signatures(
    sam_key: bytes, items: Sequence[tuple[bytes, bytes]]
) -> list[TraceableSignature | VerificationError]:
    """Check many traceable signatures of ONE SAM at once (same rule, batched CMAC).

    Args:
        sam_key: the SAM's traceable-signature key (:func:`sam_trace_key`).
        items: ``(signed, record)`` pairs, as for :func:`verify_traceable_signature`.

    Returns:
        For each item, in order, the parsed signature when it verifies, else the
        :class:`VerificationError` :func:`verify_traceable_signature` would have raised (a
        value, never a boolean: the caller decides what a forgery does to its record).
    """
    results: list[TraceableSignature | VerificationError] = []
    checked: list[tuple[int, TraceableSignature]] = []
    messages: list[bytes] = []
    for signed, record in items:
        try:
            parsed = TraceableSignature.parse(signed)
        except VerificationError as exc:
            results.append(exc)
            continue
        checked.append((len(results), parsed))
        results.append(parsed)
        messages.append(_signed_message(parsed.sam_serial, parsed.sam_counter, record))
    for (index, parsed), tag in zip(checked, aes_cmac_many(sam_key, messages), strict=True):
        if not hmac.compare_digest(tag[:SIGNATURE_SIZE], parsed.signature):
            results[index] = VerificationError("traceable signature does not verify")
    return results
