"""The bytes a signed table's signature covers: one definition for the backend and the terminals.

Envelope (JSON) of every table the backend pushes (tariff, deny-list, deny-list delta, action
list)::

    {"kind": ..., "version": N, "issued_at": "<UTC ISO 8601>", "payload": {...},
     "signature": "<base64 Ed25519 signature>"}

The signature (Ed25519, RFC 8032) covers :func:`canonical_bytes`: the JSON of
``{kind, version, issued_at, payload}`` with keys sorted, no spaces, UTF-8, no NaN, ``issued_at``
converted to UTC. The backend signs these bytes with its HSM key; terminal/fares/signed.py
verifies them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def utc_isoformat(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601; a naive datetime is read as Europe/Paris wall-clock time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return moment.astimezone(UTC).isoformat()


def canonical_bytes(kind: str, version: int, issued_at: datetime, payload: Any) -> bytes:
    """The bytes an envelope's signature covers (canonical JSON, UTF-8)."""
    document = {
        "kind": kind,
        "version": version,
        "issued_at": utc_isoformat(issued_at),
        "payload": payload,
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
