"""``/api/v1/auth``: OAuth2 password flow for desk agents; agent accounts (supervisors)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from backend.audit import service as audit
from backend.auth import service
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.models import Agent
from backend.auth.roles import AgentRole
from backend.auth.schemas import AgentIn, AgentOut, TokenOut
from backend.auth.security import issue_agent_token
from backend.auth.throttle import LoginThrottle, TooManyAttempts
from backend.columns import utcnow
from backend.db import transaction
from backend.dependencies import SessionDep, SettingsDep
from backend.errors import AuthenticationFailed
from backend.pagination import PageDep
from backend.settings import Settings

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenOut,
    responses={429: {"description": "too many failed attempts: wait Retry-After seconds"}},
)
def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    """Exchange an agent's user name and password for a short-lived bearer token.

    Repeated failures for one account or from one client are throttled (429 with
    ``Retry-After``, audited): see :mod:`backend.auth.throttle`.
    """
    throttle = login_throttle_of(request.app)
    client = request.client.host if request.client is not None else "unknown"
    try:
        throttle.check(form.username, client)
    except TooManyAttempts:
        _audit_throttle(request, form.username, client, "refused while throttled")
        raise
    try:
        agent = service.authenticate_agent(session, form.username, form.password)
    except AuthenticationFailed:
        delay = throttle.failed(form.username, client)
        if delay:
            _audit_throttle(request, form.username, client, f"blocked for {delay} s")
        raise
    throttle.succeeded(form.username)
    return _token(agent.username, agent.role, settings)


@router.post("/refresh", response_model=TokenOut)
def refresh(
    settings: SettingsDep, agent: Annotated[AgentPrincipal, Depends(require_agent())]
) -> TokenOut:
    """A new token for the agent holding a valid one (the page refreshes before expiry, so an
    agent typing a long form is not logged out)."""
    return _token(agent.username, agent.role, settings)


def _token(username: str, role: AgentRole, settings: Settings) -> TokenOut:
    token = issue_agent_token(
        settings.jwt_secret_value(),
        username,
        role,
        now=utcnow(),
        lifetime=settings.jwt_token_lifetime,
    )
    return TokenOut(
        access_token=token,
        expires_in=int(settings.jwt_token_lifetime.total_seconds()),
        role=role,
    )


def login_throttle_of(app: Any) -> LoginThrottle:
    """The app's login throttle (``app.state.login_throttle``), made on first use."""
    throttle = getattr(app.state, "login_throttle", None)
    if throttle is None:
        throttle = app.state.login_throttle = LoginThrottle()
    return cast(LoginThrottle, throttle)


def _audit_throttle(request: Request, username: str, client: str, what: str) -> None:
    """Audit a throttling event in its own transaction (the request's is rolled back)."""
    with transaction(request.app.state.sessionmaker) as session:
        audit.record(
            session,
            agent=username[:64] or "-",
            role="-",
            action="auth.throttled",
            subject=f"client:{client}"[:200],
            reason=f"échecs de connexion répétés / repeated login failures: {what}",
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
    page: PageDep,
) -> list[AgentOut]:
    """Every agent account (supervisors and auditors)."""
    return page.of([AgentOut.model_validate(a) for a in service.list_agents(session)])


@router.post("/agents", response_model=AgentOut, status_code=status.HTTP_201_CREATED)
def create_agent(
    body: AgentIn,
    session: SessionDep,
    _: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))],
) -> AgentOut:
    """Create an agent account (supervisors only)."""
    agent = service.create_agent(session, body.username, body.password, body.role, body.full_name)
    return AgentOut.model_validate(agent)
