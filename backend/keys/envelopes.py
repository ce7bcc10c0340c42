"""Signed envelopes of pushed tables, as terminal/fares/signed.py verifies them.

``{"kind", "version", "issued_at", "payload", "signature"}``: the Ed25519 signature (made in the
HSM by :meth:`backend.keys.service.KeyService.sign_table`) covers
:func:`card_schema.signed_tables.canonical_bytes`, the one definition both sides share.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Protocol

from card_schema.signed_tables import canonical_bytes, utc_isoformat


class TableSigner(Protocol):
    """Anything that signs table bytes with the table-signing key."""

    def sign_table(self, data: bytes) -> bytes:
        """Ed25519 signature of ``data``."""
        ...


def sign_payload(
    signer: TableSigner, kind: str, version: int, issued_at: datetime, payload: Any
) -> bytes:
    """The signature of one table."""
    return signer.sign_table(canonical_bytes(kind, version, issued_at, payload))


def envelope(
    kind: str, version: int, issued_at: datetime, payload: Any, signature: bytes
) -> dict[str, Any]:
    """The envelope as sent to terminals (JSON object)."""
    return {
        "kind": kind,
        "version": version,
        "issued_at": utc_isoformat(issued_at),
        "payload": payload,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
