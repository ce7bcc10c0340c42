"""``/api/v1/auth``: OAuth2 password flow for desk agents; agent accounts (supervisors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from backend.auth import service
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.models import Agent
from backend.auth.roles import AgentRole
from backend.auth.schemas import AgentIn, AgentOut, TokenOut
from backend.columns import utcnow
from backend.dependencies import SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    """Exchange an agent's user name and password for a short-lived bearer token."""
    agent = service.authenticate_agent(session, form.username, form.password)
    token = service.token_for(agent, settings, utcnow())
    return TokenOut(
        access_token=token,
        expires_in=int(settings.jwt_token_lifetime.total_seconds()),
        role=agent.role,
    )


@router.get("/me", response_model=AgentOut)
def who_am_i(
    session: SessionDep, agent: Annotated[AgentPrincipal, Depends(require_agent())]
) -> AgentOut:
    """The authenticated agent's account."""
    return AgentOut.model_validate(session.get(Agent, agent.agent_id))


@router.get("/agents", response_model=list[AgentOut])
def list_agents(
    session: SessionDep,
    _: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))],
) -> list[AgentOut]:
    """Every agent account (supervisors and auditors)."""
    return [AgentOut.model_validate(a) for a in service.list_agents(session)]


@router.post("/agents", response_model=AgentOut, status_code=status.HTTP_201_CREATED)
def create_agent(
    body: AgentIn,
    session: SessionDep,
    _: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))],
) -> AgentOut:
    """Create an agent account (supervisors only)."""
    agent = service.create_agent(session, body.username, body.password, body.role, body.full_name)
    return AgentOut.model_validate(agent)
