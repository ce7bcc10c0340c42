"""``/api/v1/holders``: create, look up (audited), update contact details."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from backend.audit import service as audit
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import READING_ROLES, WRITING_ROLES
from backend.bounds import IsoDate, PathId
from backend.dependencies import SessionDep
from backend.holders import service
from backend.holders.schemas import HolderIn, HolderOut, HolderUpdate
from backend.pagination import PageDep

router = APIRouter(prefix="/api/v1/holders", tags=["holders"])

Writer = Annotated[AgentPrincipal, Depends(require_agent(*WRITING_ROLES))]
Reader = Annotated[AgentPrincipal, Depends(require_agent(*READING_ROLES))]
Reason = Annotated[
    str, Query(min_length=3, max_length=200, description="why the agent looks this up (audited)")
]


@router.post("", response_model=HolderOut, status_code=status.HTTP_201_CREATED)
def create_holder(body: HolderIn, session: SessionDep, _: Writer) -> HolderOut:
    """Create a holder (or an anonymous holder for an anonymous card)."""
    return HolderOut.model_validate(service.create_holder(session, **body.model_dump()))


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
    family_name: Annotated[str, Query(min_length=2, max_length=100)],
    reason: Reason,
    session: SessionDep,
    agent: Reader,
    page: PageDep,
    birth_date: IsoDate | None = None,
) -> list[HolderOut]:
    """Search holders by family name (and birth date); audited with its reason."""
    found = service.search_holders(session, family_name=family_name, birth_date=birth_date)
    audit.record_lookup(
        session, agent, action="holder.search", subject=f"name:{family_name[:40]}", reason=reason
    )
    return page.of([HolderOut.model_validate(h) for h in found])


@router.patch("/{holder_id}", response_model=HolderOut)
def update_holder(
    holder_id: PathId, body: HolderUpdate, session: SessionDep, _: Writer
) -> HolderOut:
    """Change a holder's contact details."""
    holder = service.update_contact(session, holder_id, **body.model_dump())
    return HolderOut.model_validate(holder)
