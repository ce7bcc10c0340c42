"""``/api/v1/entitlements``: school aid per school year; employment rights from partners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from backend.actions.schemas import CardActionOut
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import WRITING_ROLES
from backend.dependencies import SessionDep
from backend.entitlements import service
from backend.entitlements.schemas import (
    EmploymentRightIn,
    EmploymentRightOut,
    SchoolAidIn,
    SchoolAidOut,
)

router = APIRouter(prefix="/api/v1/entitlements", tags=["entitlements"])

Writer = Annotated[AgentPrincipal, Depends(require_agent(*WRITING_ROLES))]


@router.post("/school-aid", response_model=SchoolAidOut, status_code=status.HTTP_201_CREATED)
def grant_school_aid(body: SchoolAidIn, session: SessionDep, agent: Writer) -> SchoolAidOut:
    """Grant ring-fenced school aid; credited on the holder's Cursus cards at their next tap."""
    aid, queued = service.grant_school_aid(session, **body.model_dump(), by=agent.username)
    return SchoolAidOut(
        id=aid.id,
        holder_id=aid.holder_id,
        school_year=aid.school_year,
        purpose=aid.purpose,
        funder=aid.funder,
        amount_cents=aid.amount_cents,
        granted_at=aid.granted_at,
        granted_by=aid.granted_by,
        actions=[CardActionOut.model_validate(a) for a in queued],
    )


@router.post(
    "/employment-rights", response_model=EmploymentRightOut, status_code=status.HTTP_201_CREATED
)
def grant_employment_right(
    body: EmploymentRightIn, session: SessionDep, agent: Writer
) -> EmploymentRightOut:
    """Record a right from an employment partner; written on the holder's cards."""
    right, queued = service.grant_employment_right(session, **body.model_dump(), by=agent.username)
    return EmploymentRightOut(
        id=right.id,
        holder_id=right.holder_id,
        partner=right.partner,
        right_code=right.right_code,
        valid_from=right.valid_from,
        valid_to=right.valid_to,
        amount_cents=right.amount_cents,
        hours=right.hours,
        status=right.status,
        actions=[CardActionOut.model_validate(a) for a in queued],
    )
