"""Card operations (no FastAPI here): issue, applications, block, block-and-replace.

Blocking a lost card puts it on the deny-list (a new signed version at once) and cancels its
pending writes. Replacing it also issues the new card for the same holder with the same
applications, and queues on the new card, as action-list entries written at its first tap, every
balance last known on the old one (stored value, aid purses, trip counters) and every pending
load that was cancelled on the old card.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.actions import service as actions
from backend.actions.models import ActionKind, CardAction
from backend.auth.roles import Application
from backend.cards.models import Card, CardApplication, CardStatus
from backend.columns import utcnow
from backend.denylists import service as denylists
from backend.errors import Conflict, InvalidRequest, NotFound
from backend.holders.service import get_holder
from backend.keys.envelopes import TableSigner
from card_schema.uploads.counters import session_number


def _serial(serial: str) -> str:
    return denylists.normalise_serial(serial)


def get_card(session: Session, serial: str) -> Card:
    """The card with this serial.

    Raises:
        NotFound: no such card.
    """
    card = session.scalar(select(Card).where(Card.serial == _serial(serial)))
    if card is None:
        raise NotFound(f"carte {serial} inconnue", f"unknown card {serial}")
    return card


def cards_of_holder(session: Session, holder_id: int) -> list[Card]:
    """Every card of a holder, oldest first."""
    return list(session.scalars(select(Card).where(Card.holder_id == holder_id).order_by(Card.id)))


def applications_of(card: Card) -> list[Application]:
    """Applications the card carries now, by name."""
    return sorted(a.application for a in card.applications if a.removed_at is None)


def issue_card(
    session: Session,
    *,
    holder_id: int,
    serial: str,
    applications: Iterable[Application],
    status: CardStatus = CardStatus.ACTIVE,
) -> Card:
    """Register a new card for a holder with the applications the person needs.

    A desk job registers it ``issuing`` and activates it once every step is on the card
    (:func:`activate_card`).

    Raises:
        NotFound: no such holder.
        Conflict: the serial is already registered.
        InvalidRequest: no application.
    """
    get_holder(session, holder_id)
    serial = _serial(serial)
    apps = sorted(set(applications))
    if not apps:
        raise InvalidRequest("au moins une application", "a card carries at least one application")
    if session.scalar(select(Card).where(Card.serial == serial)) is not None:
        raise Conflict(f"carte {serial} déjà émise", f"card {serial} already exists")
    now = utcnow()
    card = Card(serial=serial, holder_id=holder_id, status=status, issued_at=now)
    card.applications = [CardApplication(application=app, added_at=now) for app in apps]
    session.add(card)
    session.flush()
    return card


def activate_card(session: Session, serial: str) -> Card:
    """A card being issued is now fully written: it becomes active (no-op for another status)."""
    card = get_card(session, serial)
    if card.status == CardStatus.ISSUING:
        card.status = CardStatus.ACTIVE
        session.flush()
    return card


def _require_active(card: Card) -> None:
    if card.status != CardStatus.ACTIVE:
        raise Conflict(
            f"carte {card.serial} {card.status.value} : opération impossible",
            f"card {card.serial} is {card.status.value}",
        )


def add_application(session: Session, serial: str, application: Application) -> Card:
    """Add an application to a card (or re-enable a removed one).

    Raises:
        Conflict: card not active, or it already carries the application.
    """
    card = get_card(session, serial)
    _require_active(card)
    for present in card.applications:
        if present.application == application:
            if present.removed_at is None:
                raise Conflict(
                    f"la carte porte déjà {application.value}",
                    f"card already carries {application.value}",
                )
            present.removed_at = None
            present.added_at = utcnow()
            session.flush()
            return card
    card.applications.append(CardApplication(application=application, added_at=utcnow()))
    session.flush()
    return card


def remove_application(session: Session, serial: str, application: Application) -> Card:
    """Remove an application from a card.

    Raises:
        Conflict: card not active.
        NotFound: the card does not carry the application.
    """
    card = get_card(session, serial)
    _require_active(card)
    for present in card.applications:
        if present.application == application and present.removed_at is None:
            present.removed_at = utcnow()
            session.flush()
            return card
    raise NotFound(
        f"la carte ne porte pas {application.value}", f"card does not carry {application.value}"
    )


def known_balances(card: Card) -> dict[str, int]:
    """Last known purse balances of a card (purse name -> value)."""
    return {str(k): int(v) for k, v in json.loads(card.balances or "{}").items()}


def update_known_balance(
    session: Session,
    serial: str,
    purse: str,
    balance: int,
    card_tx_counter: int,
    *,
    seen_at: datetime | None = None,
) -> None:
    """Remember a purse balance seen in an upload (called by the validation loop).

    Older sessions never overwrite a newer balance. Calypso counters count down, so sessions are
    compared by :func:`card_schema.uploads.counters.session_number`. ``seen_at`` is when that
    card session happened (the holder's page says « au dernier passage du … »); upload time if
    not given.
    """
    card = session.scalar(select(Card).where(Card.serial == _serial(serial)))
    if card is None:
        return
    if card.last_tx_counter is not None and session_number(card_tx_counter) < session_number(
        card.last_tx_counter
    ):
        return
    balances = known_balances(card)
    balances[purse] = balance
    card.balances = json.dumps(balances, sort_keys=True, separators=(",", ":"))
    card.last_tx_counter = card_tx_counter
    card.balances_at = seen_at or utcnow()


def block_card(
    session: Session, signer: TableSigner, serial: str, reason: str, *, by: str
) -> tuple[Card, list[CardAction]]:
    """Block a lost or stolen card: deny-list it (new signed version), cancel its pending writes.

    Returns:
        The card and the pending actions that were cancelled.

    Raises:
        Conflict: the card is not active.
    """
    card = get_card(session, serial)
    _require_active(card)
    card.status = CardStatus.BLOCKED
    card.blocked_at = utcnow()
    card.blocked_reason = reason[:200]
    cancelled = actions.cancel_pending(session, card.serial)
    denylists.add(session, signer, card.serial, f"{reason[:150]} ({by})")
    return card, cancelled


def unblock_card(session: Session, signer: TableSigner, serial: str) -> Card:
    """Take a blocked card off the deny-list (found again by its holder); a supervisor's act.

    Pending writes cancelled at the block stay cancelled (sell them again if needed).

    Raises:
        Conflict: the card is not blocked (active, or already replaced: a replaced card never
            comes back, its balances moved).
    """
    card = get_card(session, serial)
    if card.status != CardStatus.BLOCKED:
        raise Conflict(
            f"carte {card.serial} {card.status.value} : seule une carte bloquée peut être "
            "débloquée",
            f"card {card.serial} is {card.status.value}, not blocked",
        )
    if card.serial in denylists.listed_serials(session):
        denylists.remove(session, signer, card.serial)
    card.status = CardStatus.ACTIVE
    card.blocked_at = None
    card.blocked_reason = None
    session.flush()
    return card


@dataclass(frozen=True)
class Replacement:
    """The outcome of a block-and-replace."""

    old: Card
    new: Card
    moved: list[CardAction]


def _purse_application(purse: str) -> Application:
    return Application.from_wire(purse.split(".", 1)[0])


def replace_card(
    session: Session,
    signer: TableSigner,
    old_serial: str,
    new_serial: str,
    reason: str,
    *,
    by: str,
    new_status: CardStatus = CardStatus.ACTIVE,
) -> Replacement:
    """Block a card (if not yet blocked) and move its balances and contracts to a new card.

    The new card gets the same holder and applications. Each positive last known balance becomes
    a ``move_balance`` action, each pending load cancelled on the old card is queued again for the
    new one; the terminals write them at the new card's first tap.

    Raises:
        Conflict: the old card was already replaced, or the new serial exists.
    """
    old = get_card(session, old_serial)
    if old.status == CardStatus.REPLACED:
        raise Conflict(f"carte {old.serial} déjà remplacée", f"card {old.serial} already replaced")
    cancelled: list[CardAction] = []
    if old.status == CardStatus.ACTIVE:
        _, cancelled = block_card(session, signer, old.serial, reason, by=by)
    apps = applications_of(old)
    new = issue_card(
        session, holder_id=old.holder_id, serial=new_serial, applications=apps, status=new_status
    )
    moved: list[CardAction] = []
    for purse, balance in sorted(known_balances(old).items()):
        if balance > 0:
            moved.append(
                actions.create_action(
                    session,
                    card_serial=new.serial,
                    application=_purse_application(purse),
                    kind=ActionKind.MOVE_BALANCE,
                    params={"purse": purse, "amount": balance, "from_card": old.serial},
                    created_by=by,
                )
            )
    for action in cancelled:
        moved.append(
            actions.create_action(
                session,
                card_serial=new.serial,
                application=action.application,
                kind=action.kind,
                params={**json.loads(action.params), "from_card": old.serial},
                created_by=by,
            )
        )
    old.status = CardStatus.REPLACED
    old.replaced_by_id = new.id
    session.flush()
    return Replacement(old=old, new=new, moved=moved)
