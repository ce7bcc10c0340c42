"""``/api/v1/holders``: create, look up (audited), update details (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from backend.audit import service as audit
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import READING_ROLES, WRITING_ROLES
from backend.bounds import IsoDate, PathId
from backend.cards.models import Card
from backend.denylists.service import normalise_serial
from backend.dependencies import SessionDep
from backend.errors import InvalidRequest
from backend.holders import service
from backend.holders.schemas import (
    HolderCreatedOut,
    HolderIn,
    HolderOut,
    HolderSummary,
    HolderUpdate,
)
from backend.pagination import PageDep

router = APIRouter(prefix="/api/v1/holders", tags=["holders"])

Writer = Annotated[AgentPrincipal, Depends(require_agent(*WRITING_ROLES))]
Reader = Annotated[AgentPrincipal, Depends(require_agent(*READING_ROLES))]
Reason = Annotated[
    str, Query(min_length=3, max_length=200, description="why the agent looks this up (audited)")
]


@router.post("", response_model=HolderCreatedOut, status_code=status.HTTP_201_CREATED)
def create_holder(body: HolderIn, session: SessionDep, _: Writer) -> HolderCreatedOut:
    """Create a holder (or an anonymous holder for an anonymous card).

    The answer lists holders with the same names and birth date (a probable duplicate: the page
    warns the agent, who may open the existing record instead).
    """
    duplicates = []
    if not body.anonymous and body.family_name and body.given_name:
        duplicates = service.possible_duplicates(
            session,
            family_name=" ".join(body.family_name.split()),
            given_name=" ".join(body.given_name.split()),
            birth_date=body.birth_date,
        )
    holder = service.create_holder(session, **body.model_dump())
    return HolderCreatedOut.model_validate(
        {
            **HolderOut.model_validate(holder).model_dump(),
            "possible_duplicates": [HolderSummary.model_validate(h) for h in duplicates],
        }
    )


@router.get("/{holder_id}", response_model=HolderOut)
def get_holder(holder_id: PathId, reason: Reason, session: SessionDep, agent: Reader) -> HolderOut:
    """Look up a holder; the lookup is written to the audit trail with its reason."""
    holder = service.get_holder(session, holder_id)
    audit.record_lookup(
        session, agent, action="holder.read", subject=f"holder:{holder_id}", reason=reason
    )
    return HolderOut.model_validate(holder)


@router.get("", response_model=list[HolderOut])
def search(
    reason: Reason,
    session: SessionDep,
    agent: Reader,
    page: PageDep,
    family_name: Annotated[str | None, Query(max_length=100)] = None,
    birth_date: IsoDate | None = None,
    postcode: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    card_serial: Annotated[str | None, Query(pattern=r"^(?:[0-9A-Fa-f]{2}){1,16}$")] = None,
) -> list[HolderOut]:
    """Search holders by family name, birth date, postcode or card serial (every criterion given
    must match); audited with its reason and the criteria."""
    holder_ids = None
    if card_serial:
        serial = normalise_serial(card_serial)
        holder_ids = list(session.scalars(select(Card.holder_id).where(Card.serial == serial)))
    if family_name is not None and not family_name.strip():
        family_name = None
    if family_name is None and birth_date is None and not postcode and not card_serial:
        raise InvalidRequest(
            "indiquez un nom, une date de naissance, un code postal ou un numéro de carte",
            "give a name, a birth date, a postcode or a card serial",
            field="family_name",
        )
    found = service.search_holders(
        session,
        family_name=family_name,
        birth_date=birth_date,
        postcode=postcode,
        holder_ids=holder_ids,
    )
    criteria = [
        f"name:{family_name[:40]}" if family_name else "",
        f"born:{birth_date.isoformat()}" if birth_date else "",
        f"postcode:{postcode}" if postcode else "",
        f"card:{card_serial.upper()}" if card_serial else "",
    ]
    audit.record_lookup(
        session,
        agent,
        action="holder.search",
        subject=" ".join(c for c in criteria if c)[:64],
        reason=reason,
    )
    return page.of([HolderOut.model_validate(h) for h in found])


@router.patch("/{holder_id}", response_model=HolderOut)
def update_holder(
    holder_id: PathId, body: HolderUpdate, session: SessionDep, agent: Writer
) -> HolderOut:
    """Correct a holder's details (only the fields sent change); audited."""
    changes = body.model_dump(exclude_unset=True)
    holder = service.update_details(session, holder_id, changes)
    audit.record_lookup(
        session,
        agent,
        action="holder.update",
        subject=f"holder:{holder_id}",
        reason="modification : " + ", ".join(sorted(changes)) if changes else "aucune modification",
    )
    return HolderOut.model_validate(holder)
