"""Deny-list operations (no FastAPI here): add and remove serials, publish signed versions.

Every change publishes a new version at once (a lost card must reach the gates quickly); a
supervisor or the daily cron also publishes an unchanged list so terminals never hold one older
than their maximum age (3 days, terminal/fares/signed.py). Each version stores the full list and
the delta from the previous version, both signed in the HSM when published.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.columns import canonical_json, utcnow
from backend.denylists.models import DenyListEntry, DenyListVersion
from backend.errors import Conflict, InvalidRequest, NotFound
from backend.keys.envelopes import TableSigner, envelope, sign_payload

FULL_KIND = "deny_list"
DELTA_KIND = "deny_list_delta"


def normalise_serial(serial: str) -> str:
    """Upper-case hex serial, as terminals match it.

    Raises:
        InvalidRequest: not 1 to 16 bytes of hex.
    """
    try:
        raw = bytes.fromhex(serial)
    except ValueError:
        raw = b""
    if not 1 <= len(raw) <= 16:
        raise InvalidRequest(
            "numéro de carte invalide (hexadécimal, 1 à 16 octets)",
            "invalid card serial (hex, 1 to 16 bytes)",
        )
    return raw.hex().upper()


def current_version(session: Session) -> int:
    """The latest published version (0 before the first)."""
    return int(session.scalar(select(func.max(DenyListVersion.version))) or 0)


def listed_serials(session: Session) -> list[str]:
    """Serials on the list now, sorted."""
    rows = session.scalars(
        select(DenyListEntry.card_serial).where(DenyListEntry.removed_version.is_(None))
    )
    return sorted(set(rows))


def publish(
    session: Session,
    signer: TableSigner,
    *,
    added: list[str] | None = None,
    removed: list[str] | None = None,
    now: datetime | None = None,
) -> DenyListVersion:
    """Publish the next version (full list + delta), signed with the HSM key.

    The entries must already carry the new version number (see :func:`add`, :func:`remove`).
    """
    now = now or utcnow()
    version = current_version(session) + 1
    full = {"serials": listed_serials(session)}
    delta = {
        "base_version": version - 1,
        "add": sorted(added or []),
        "remove": sorted(removed or []),
    }
    row = DenyListVersion(
        version=version,
        issued_at=now,
        full_payload=canonical_json(full),
        full_signature=sign_payload(signer, FULL_KIND, version, now, full),
        delta_payload=canonical_json(delta),
        delta_signature=sign_payload(signer, DELTA_KIND, version, now, delta),
    )
    session.add(row)
    session.flush()
    return row


def add(
    session: Session, signer: TableSigner, serial: str, reason: str, *, now: datetime | None = None
) -> DenyListVersion:
    """Put a card on the deny-list and publish the new version.

    Raises:
        Conflict: the serial is already listed.
    """
    serial = normalise_serial(serial)
    if serial in listed_serials(session):
        raise Conflict(f"carte {serial} déjà en opposition", f"card {serial} is already listed")
    session.add(
        DenyListEntry(
            card_serial=serial,
            reason=reason[:200],
            added_version=current_version(session) + 1,
            added_at=now or utcnow(),
        )
    )
    session.flush()
    return publish(session, signer, added=[serial], now=now)


def remove(
    session: Session, signer: TableSigner, serial: str, *, now: datetime | None = None
) -> DenyListVersion:
    """Take a card off the list (caught and invalidated, or found again) and publish.

    Raises:
        NotFound: the serial is not listed.
    """
    serial = normalise_serial(serial)
    entries = list(
        session.scalars(
            select(DenyListEntry).where(
                DenyListEntry.card_serial == serial, DenyListEntry.removed_version.is_(None)
            )
        )
    )
    if not entries:
        raise NotFound(f"carte {serial} absente de la liste", f"card {serial} is not listed")
    for entry in entries:
        entry.removed_version = current_version(session) + 1
    session.flush()
    return publish(session, signer, removed=[serial], now=now)


def _version(session: Session, version: int | None) -> DenyListVersion:
    number = version if version is not None else current_version(session)
    row = session.get(DenyListVersion, number) if number else None
    if row is None:
        raise NotFound(
            f"version {number} de la liste d'opposition inconnue",
            f"deny-list version {number} does not exist",
        )
    return row


def full_envelope(session: Session, version: int | None = None) -> dict[str, Any]:
    """The signed full list of ``version`` (latest by default)."""
    row = _version(session, version)
    payload = json.loads(row.full_payload)
    return envelope(FULL_KIND, row.version, row.issued_at, payload, row.full_signature)


def delta_envelopes(session: Session, since: int) -> list[dict[str, Any]]:
    """The signed deltas that bring a terminal from version ``since`` to the latest, in order.

    Raises:
        InvalidRequest: ``since`` is negative or newer than the latest version.
    """
    latest = current_version(session)
    if since < 0 or since > latest:
        raise InvalidRequest(
            f"version de base {since} invalide (dernière : {latest})",
            f"base version {since} is not between 0 and the latest ({latest})",
        )
    rows = session.scalars(
        select(DenyListVersion)
        .where(DenyListVersion.version > since)
        .order_by(DenyListVersion.version)
    )
    return [
        envelope(DELTA_KIND, r.version, r.issued_at, json.loads(r.delta_payload), r.delta_signature)
        for r in rows
    ]
