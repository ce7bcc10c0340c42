"""What the validation loop needs from the key and privacy domains, as small protocols.

The real implementations live elsewhere (``backend.keys.service.KeyService``: SAM trace keys
derived inside PKCS#11, keyed pseudonyms; ``backend.terminals.service``: terminal public keys).
The in-memory classes here serve the unit tests and the bench.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from card_schema.traceability import sam_trace_key

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class TraceKeyProvider(Protocol):
    """Gives the traceable-signature verification key of a SAM (master key stays in the HSM)."""

    def sam_trace_key(self, sam_serial: bytes) -> bytes:
        """The 16-byte key of the SAM ``sam_serial``."""
        ...


class CardPseudonymizer(Protocol):
    """Gives the keyed pseudonym under which a card's taps are stored."""

    def pseudonym_period(self, at: datetime) -> int:
        """Index of the key rotation period holding ``at`` (the loop caches per period)."""
        ...

    def pseudonym(self, card_serial: bytes, at: datetime) -> str:
        """The pseudonym of ``card_serial`` for the rotation period holding ``at``."""
        ...


class TerminalKeyProvider(Protocol):
    """Gives a terminal's registered Ed25519 key by key id."""

    def terminal_public_key(self, terminal_id: str, key_id: str) -> Ed25519PublicKey:
        """The active key; raises when unknown or revoked."""
        ...


class InMemoryTraceKeys:
    """Derives SAM keys from a trace master key held in memory (tests and bench only)."""

    def __init__(self, trace_master_key: bytes) -> None:
        """Keep ``trace_master_key`` (16 bytes)."""
        self._master = trace_master_key

    def sam_trace_key(self, sam_serial: bytes) -> bytes:
        """AN10922 diversification, as the HSM does it."""
        return sam_trace_key(self._master, sam_serial)


class InMemoryPseudonymizer:
    """HMAC-SHA256 pseudonyms under a key held in memory, same shape as the KeyService's.

    Periods of ``rotation_days`` count from 2024-01-01 UTC, as in ``backend.keys.service``.
    """

    def __init__(self, key: bytes, rotation_days: int = 7) -> None:
        """Keep ``key`` (one key derives every period's pseudonyms here; the HSM keeps one each)."""
        self._key = key
        self._rotation = timedelta(days=rotation_days)

    def pseudonym_period(self, at: datetime) -> int:
        """Index of the rotation period holding ``at``."""
        return (at - _EPOCH) // self._rotation

    def pseudonym(self, card_serial: bytes, at: datetime) -> str:
        """``P<period>-<32 hex>``: HMAC(key, period || serial), truncated to 128 bits."""
        period = self.pseudonym_period(at)
        digest = hmac.new(self._key, period.to_bytes(4, "big") + card_serial, hashlib.sha256)
        return f"P{period}-{digest.hexdigest()[:32]}"
