"""Action lists (no FastAPI here): writes waiting for a card, served signed, confirmed once.

A load sold at the desk or granted by a funder cannot wait for the holder to come back: it becomes
a :class:`CardAction`, sent to the terminals that write that application, written at the card's
next tap, and confirmed by the upload of that session (the card transaction counter proves it
happened once: a second confirmation with another counter is refused).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.actions.models import ActionKind, ActionStatus, CardAction
from backend.auth.roles import Application
from backend.cards.models import Card, CardStatus
from backend.columns import canonical_json, utcnow
from backend.errors import Conflict, NotFound
from backend.keys.envelopes import TableSigner, envelope, sign_payload
from backend.validation.models import Tap

ACTION_LIST_KIND = "action_list"


def create_action(
    session: Session,
    *,
    card_serial: str,
    application: Application,
    kind: ActionKind,
    params: dict[str, Any],
    created_by: str,
) -> CardAction:
    """Queue a write for a card."""
    action = CardAction(
        card_serial=card_serial,
        application=application,
        kind=kind,
        params=canonical_json(params),
        status=ActionStatus.PENDING,
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(action)
    session.flush()
    return action


def pending_actions(
    session: Session,
    *,
    applications: Collection[Application] | None = None,
    card_serial: str | None = None,
) -> list[CardAction]:
    """Pending actions, oldest first, optionally for some applications or one card."""
    query = select(CardAction).where(CardAction.status == ActionStatus.PENDING)
    if applications is not None:
        query = query.where(CardAction.application.in_(list(applications)))
    if card_serial is not None:
        query = query.where(CardAction.card_serial == card_serial)
    return list(session.scalars(query.order_by(CardAction.id)))


def actions_of_card(session: Session, card_serial: str) -> list[CardAction]:
    """Every action of a card, oldest first."""
    return list(
        session.scalars(
            select(CardAction).where(CardAction.card_serial == card_serial).order_by(CardAction.id)
        )
    )


def action_json(action: CardAction) -> dict[str, Any]:
    """One action as it appears in a signed action list."""
    return {
        "action_id": action.id,
        "card_serial": action.card_serial,
        "application": action.application.value,
        "kind": action.kind.value,
        "params": json.loads(action.params),
    }


def signed_action_list(
    session: Session,
    signer: TableSigner,
    applications: Collection[Application],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The pending actions a terminal may write, in a signed envelope (kind ``action_list``).

    The version is the issue time in milliseconds: every list is newer than the previous one.
    """
    now = now or utcnow()
    # A card still being issued at the desk is written by its desk job, never at a tap: a
    # half-written card must not take a load the desk has not recorded as sold.
    issuing = set(session.scalars(select(Card.serial).where(Card.status == CardStatus.ISSUING)))
    payload = {
        "actions": [
            action_json(a)
            for a in pending_actions(session, applications=applications)
            if a.card_serial not in issuing
        ]
    }
    version = int(now.timestamp() * 1000)
    return envelope(
        ACTION_LIST_KIND,
        version,
        now,
        payload,
        sign_payload(signer, ACTION_LIST_KIND, version, now, payload),
    )


def confirm_action(
    session: Session, card_serial: str, action_id: int, card_tx_counter: int
) -> CardAction:
    """Mark an action written, as an uploaded card session reports it.

    Idempotent: the same confirmation again (same counter) changes nothing.

    Args:
        session: database session.
        card_serial: card serial (hex, any case).
        action_id: the action the terminal wrote.
        card_tx_counter: card transaction counter of the session that wrote it.

    Raises:
        NotFound: no such action for this card.
        Conflict: the action was cancelled, or already confirmed by another card session.
    """
    action = session.get(CardAction, action_id)
    if action is None or action.card_serial != card_serial.upper():
        raise NotFound(
            f"action {action_id} inconnue pour la carte {card_serial}",
            f"no action {action_id} for card {card_serial}",
        )
    if action.status == ActionStatus.CONFIRMED:
        if action.confirmed_card_tx_counter == card_tx_counter:
            return action
        raise Conflict(
            f"action {action_id} déjà écrite (compteur {action.confirmed_card_tx_counter})",
            f"action {action_id} already confirmed by card counter "
            f"{action.confirmed_card_tx_counter}, not {card_tx_counter}",
        )
    if action.status == ActionStatus.CANCELLED:
        raise Conflict(f"action {action_id} annulée", f"action {action_id} was cancelled")
    action.status = ActionStatus.CONFIRMED
    action.confirmed_card_tx_counter = card_tx_counter
    action.confirmed_at = utcnow()
    session.flush()
    return action


def cancel_pending(session: Session, card_serial: str) -> list[CardAction]:
    """Cancel every pending action of a card (it was blocked); return them."""
    cancelled = pending_actions(session, card_serial=card_serial)
    for action in cancelled:
        action.status = ActionStatus.CANCELLED
    session.flush()
    return cancelled


class Pseudonyms(Protocol):
    """What :func:`write_proven` needs from the key service."""

    @property
    def pseudonym_rotation(self) -> timedelta: ...

    def pseudonym(self, card_serial: bytes, at: datetime) -> str: ...


def write_proven(
    session: Session,
    keys: Pseudonyms,
    *,
    terminal_id: str,
    card_serial: str,
    card_tx_counter: int,
    application: str,
    now: datetime | None = None,
) -> bool:
    """Whether a validated, committed card session proves that ``terminal_id`` wrote this card.

    The session is a stored tap of that terminal, on the card (under its pseudonym of the
    current or the previous rotation period: card links are kept 48 hours at most), for the
    application, with the card counter the terminal reports, committed by the card and signed
    by a SAM whose signature verified.
    """
    now = now or utcnow()
    try:
        serial = bytes.fromhex(card_serial)
    except ValueError:
        return False
    pseudonyms = {
        keys.pseudonym(serial, now),
        keys.pseudonym(serial, now - keys.pseudonym_rotation),
    }
    found = session.scalar(
        select(Tap.id)
        .where(
            Tap.terminal_id == terminal_id,
            Tap.card_pseudonym.in_(pseudonyms),
            Tap.card_tx_counter == card_tx_counter,
            Tap.application == application,
            Tap.outcome == "COMMITTED",
            Tap.sam_verified.is_(True),
        )
        .limit(1)
    )
    return found is not None
