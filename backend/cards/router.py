"""``/api/v1/cards``: issue, look up (audited), applications, block, block-and-replace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.orm import Session

from backend.actions.schemas import CardActionOut
from backend.audit import service as audit
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import READING_ROLES, WRITING_ROLES, AgentRole, Application
from backend.bounds import QueryId
from backend.cards import service
from backend.cards.models import Card
from backend.cards.schemas import ApplicationIn, BlockIn, CardIn, CardOut, ReplaceIn, ReplacementOut
from backend.dependencies import KeysDep, SessionDep
from backend.pagination import PageDep

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])

Writer = Annotated[AgentPrincipal, Depends(require_agent(*WRITING_ROLES))]
Reader = Annotated[AgentPrincipal, Depends(require_agent(*READING_ROLES))]
Supervisor = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Reason = Annotated[
    str, Query(min_length=3, max_length=200, description="why the agent looks this up (audited)")
]


def card_out(session: Session, card: Card) -> CardOut:
    """A card for the API."""
    replaced_by = session.get(Card, card.replaced_by_id) if card.replaced_by_id else None
    return CardOut(
        serial=card.serial,
        holder_id=card.holder_id,
        status=card.status,
        applications=service.applications_of(card),
        issued_at=card.issued_at,
        blocked_at=card.blocked_at,
        blocked_reason=card.blocked_reason,
        replaced_by=replaced_by.serial if replaced_by else None,
        balances=service.known_balances(card),
    )


@router.post("", response_model=CardOut, status_code=status.HTTP_201_CREATED)
def issue(body: CardIn, session: SessionDep, _: Writer) -> CardOut:
    """Register a new card for a holder, with the applications the person needs."""
    card = service.issue_card(
        session, holder_id=body.holder_id, serial=body.serial, applications=body.applications
    )
    return card_out(session, card)


@router.get("/{serial}", response_model=CardOut)
def get_card(serial: str, reason: Reason, session: SessionDep, agent: Reader) -> CardOut:
    """Look up a card; the lookup is written to the audit trail with its reason."""
    card = service.get_card(session, serial)
    audit.record_lookup(
        session, agent, action="card.read", subject=f"card:{card.serial}", reason=reason
    )
    return card_out(session, card)


@router.get("", response_model=list[CardOut])
def cards_of_holder(
    holder_id: QueryId, reason: Reason, session: SessionDep, agent: Reader, page: PageDep
) -> list[CardOut]:
    """The cards of a holder; audited with its reason."""
    cards = service.cards_of_holder(session, holder_id)
    audit.record_lookup(
        session, agent, action="card.list", subject=f"holder:{holder_id}", reason=reason
    )
    return page.of([card_out(session, c) for c in cards])


@router.post("/{serial}/applications", response_model=CardOut)
def add_application(serial: str, body: ApplicationIn, session: SessionDep, _: Writer) -> CardOut:
    """Add an application to a card."""
    return card_out(session, service.add_application(session, serial, body.application))


@router.delete("/{serial}/applications/{application}", response_model=CardOut)
def remove_application(
    serial: str, application: Application, session: SessionDep, _: Writer
) -> CardOut:
    """Remove an application from a card."""
    return card_out(session, service.remove_application(session, serial, application))


@router.post("/{serial}/block", response_model=CardOut)
def block(serial: str, body: BlockIn, session: SessionDep, keys: KeysDep, agent: Writer) -> CardOut:
    """Block a lost or stolen card: deny-listed at once (a new signed version, sent to the
    terminals at their next push); audited. Replacing it is a separate, later step."""
    card, _ = service.block_card(session, keys, serial, body.reason, by=agent.username)
    audit.record_lookup(
        session, agent, action="card.block", subject=f"card:{card.serial}", reason=body.reason
    )
    return card_out(session, card)


@router.post("/{serial}/unblock", response_model=CardOut)
def unblock(
    serial: str, body: BlockIn, session: SessionDep, keys: KeysDep, agent: Supervisor
) -> CardOut:
    """Unblock a card found again (supervisors only): off the deny-list; audited with its reason."""
    card = service.unblock_card(session, keys, serial)
    audit.record_lookup(
        session, agent, action="card.unblock", subject=f"card:{card.serial}", reason=body.reason
    )
    return card_out(session, card)


@router.post("/{serial}/replace", response_model=ReplacementOut)
def replace(
    serial: str, body: ReplaceIn, session: SessionDep, keys: KeysDep, agent: Writer
) -> ReplacementOut:
    """Block a card and move its balances and contracts to a new card (written at its first tap)."""
    done = service.replace_card(
        session, keys, serial, body.new_serial, body.reason, by=agent.username
    )
    return ReplacementOut(
        old=card_out(session, done.old),
        new=card_out(session, done.new),
        moved=[CardActionOut.model_validate(a) for a in done.moved],
    )
