"""Agent accounts: create, authenticate, issue tokens (no FastAPI here)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth.models import Agent
from backend.auth.roles import AgentRole
from backend.auth.security import hash_password, issue_agent_token, verify_password
from backend.errors import AuthenticationFailed, Conflict, InvalidRequest
from backend.settings import Settings

MIN_PASSWORD_LENGTH = 10
_DUMMY_HASH = hash_password("not a real password, evens out timing")


def create_agent(
    session: Session, username: str, password: str, role: AgentRole, full_name: str = ""
) -> Agent:
    """Create a desk agent account.

    Raises:
        InvalidRequest: empty user name or password shorter than :data:`MIN_PASSWORD_LENGTH`.
        Conflict: the user name is taken.
    """
    if not username or len(username) > 64:
        raise InvalidRequest("identifiant vide ou trop long", "empty or too long user name")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"mot de passe trop court ({MIN_PASSWORD_LENGTH} caractères au moins)",
            f"password too short (at least {MIN_PASSWORD_LENGTH} characters)",
        )
    if session.scalar(select(Agent).where(Agent.username == username)) is not None:
        raise Conflict(f"l'agent {username} existe déjà", f"agent {username} already exists")
    agent = Agent(
        username=username, full_name=full_name, role=role, password_hash=hash_password(password)
    )
    session.add(agent)
    session.flush()
    return agent


def list_agents(session: Session) -> list[Agent]:
    """Every agent account, by user name."""
    return list(session.scalars(select(Agent).order_by(Agent.username)))


def authenticate_agent(session: Session, username: str, password: str) -> Agent:
    """The active agent with these credentials.

    Raises:
        AuthenticationFailed: unknown user, wrong password or disabled account (one message).
    """
    agent = session.scalar(select(Agent).where(Agent.username == username))
    verify_password(password, agent.password_hash if agent is not None else _DUMMY_HASH)
    if agent is None or not agent.active:
        raise AuthenticationFailed(
            "identifiant ou mot de passe incorrect", "wrong user name or password"
        )
    return agent


def token_for(agent: Agent, settings: Settings, now: datetime) -> str:
    """A short-lived JWT for ``agent``."""
    return issue_agent_token(
        settings.jwt_secret_value(),
        agent.username,
        agent.role,
        now=now,
        lifetime=settings.jwt_token_lifetime,
    )
