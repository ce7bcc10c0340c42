"""Personalisation data for a blank card (no FastAPI here).

Design (docs/backend.md, "Desk personalisation"): the backend holds the master keys in its HSM; a
desk station asks for the keys of one card serial and the applications chosen. For each
application and each key role (issuer, load, debit) the HSM diversifies the master key with the
card serial (AN10922, input ``serial || application DF name``, as
:func:`card_schema.crypto.card_key`) and wraps the result with the transport key shared with the
desk SAMs (RFC 3394 AES key wrap). The card key never exists in clear outside the HSM and the
desk SAM; the desk writes it into the card inside the card's secure channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.auth.roles import Application
from backend.cards import service as cards
from backend.cards.models import CardStatus
from backend.errors import Conflict, InvalidRequest
from backend.keys.service import TRANSPORT_LABEL, KeyService
from card_schema.crypto import KeyRef, KeyRole
from card_schema.errors import SchemaError
from card_schema.layout import CARD_LAYOUT
from card_schema.records import encode_record


@dataclass(frozen=True)
class WrappedKey:
    """One card key, wrapped."""

    application: str
    role: str
    kif: int
    version: int
    wrapped: bytes

    def to_json(self) -> dict[str, Any]:
        """The key as desk stations receive it (wrapped key in hex)."""
        return {
            "application": self.application,
            "role": self.role,
            "kif": self.kif,
            "version": self.version,
            "wrapped_key": self.wrapped.hex(),
        }


@dataclass(frozen=True)
class EncodedRecord:
    """One initial record, encoded by card_schema."""

    record_type: str
    data: bytes


def card_keys(
    keys: KeyService, serial: bytes, applications: Sequence[Application], version: int = 1
) -> list[WrappedKey]:
    """Every key of the chosen applications for one card, wrapped under the transport key."""
    out = []
    for app in applications:
        layout = CARD_LAYOUT.application(app.value)
        for role in KeyRole:
            ref = KeyRef(layout.name, role, version)
            wrapped = keys.wrapped_card_key(ref, (serial + layout.aid)[:31], TRANSPORT_LABEL)
            out.append(WrappedKey(layout.name, role.value, layout.kif(role), version, wrapped))
    return out


def encode_initial_records(records: Sequence[tuple[str, Mapping[str, Any]]]) -> list[EncodedRecord]:
    """Encode the initial records the desk asked for.

    Raises:
        InvalidRequest: a record type or field that card_schema refuses (named in the message).
    """
    out = []
    for record_type, values in records:
        try:
            out.append(EncodedRecord(record_type, encode_record(record_type, values)))
        except SchemaError as exc:
            raise InvalidRequest(
                f"enregistrement {record_type} invalide : {exc}",
                f"record {record_type} does not encode: {exc}",
            ) from exc
    return out


def personalisation_data(
    session: Session,
    keys: KeyService,
    *,
    serial: str,
    applications: Sequence[Application],
    records: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> tuple[list[WrappedKey], list[EncodedRecord]]:
    """Keys and records to personalise a card registered at the desk.

    Raises:
        NotFound: the card is not registered (issue it first).
        Conflict: the card is neither being issued nor active, or an application it does not
            carry is asked for.
    """
    card = cards.get_card(session, serial)
    # A desk job registers its card as ``issuing`` until the card is written: that is the very
    # card personalisation is for (the router has already checked the station's open job).
    if card.status not in (CardStatus.ISSUING, CardStatus.ACTIVE):
        raise Conflict(f"carte {card.serial} {card.status.value}", f"card is {card.status.value}")
    missing = set(applications) - set(cards.applications_of(card))
    if missing:
        names = ", ".join(sorted(a.value for a in missing))
        raise Conflict(
            f"la carte ne porte pas : {names}", f"card does not carry application(s): {names}"
        )
    if not applications:
        raise InvalidRequest("au moins une application", "ask for at least one application")
    return (
        card_keys(keys, bytes.fromhex(card.serial), applications),
        encode_initial_records(records),
    )
