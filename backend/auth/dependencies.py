"""FastAPI dependencies that authenticate the caller and check what it may do.

Two kinds of callers, two schemes (both visible in the OpenAPI document):

- **desk agents**: ``Authorization: Bearer <JWT>`` obtained from ``POST /api/v1/auth/token``
  (OAuth2 password flow). ``require_agent(*roles)`` returns an :class:`AgentPrincipal`.
- **terminals**: ``X-Regioncard-Terminal: <terminal_id>`` and ``Authorization: Bearer <credential>``
  (the ``rct_...`` credential issued at registration). ``require_terminal(*kinds)`` returns a
  :class:`TerminalPrincipal`. A credential only opens the terminal it was issued to, so a terminal
  cannot act as another one; an upload must also name the same terminal in its body
  (:func:`ensure_same_terminal`).

Usage::

    @router.post("/things")
    def make_thing(agent: Annotated[AgentPrincipal, Depends(require_agent("agent", "supervisor"))]):
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
)
from sqlalchemy import select

from backend.auth.models import Agent
from backend.auth.roles import AgentRole, TerminalKind
from backend.auth.security import TERMINAL_CREDENTIAL_PREFIX, read_agent_token
from backend.dependencies import SessionDep, SettingsDep
from backend.errors import AuthenticationFailed, Forbidden
from backend.terminals.service import authenticate_terminal

TOKEN_URL = "/api/v1/auth/token"
TERMINAL_HEADER = "X-Regioncard-Terminal"

_oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False, scheme_name="agent")
_terminal_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="terminal",
    description="Terminal credential (rct_...) issued at registration",
)
_terminal_header = APIKeyHeader(name=TERMINAL_HEADER, auto_error=False, scheme_name="terminal_id")


@dataclass(frozen=True)
class AgentPrincipal:
    """An authenticated desk agent."""

    agent_id: int
    username: str
    role: AgentRole


@dataclass(frozen=True)
class TerminalPrincipal:
    """An authenticated terminal."""

    terminal_id: str
    kind: TerminalKind
    station_id: int | None
    school_uai: str | None
    sam_serial: bytes | None


def _no_credentials() -> AuthenticationFailed:
    return AuthenticationFailed(
        "authentification requise", "authentication required (Authorization: Bearer ...)"
    )


def _roles_text(roles: tuple[AgentRole, ...]) -> str:
    return ", ".join(role.value for role in roles)


def require_agent(*roles: AgentRole | str) -> Callable[..., AgentPrincipal]:
    """A dependency admitting desk agents whose role is one of ``roles`` (any role if none).

    Raises (from the dependency):
        AuthenticationFailed: no token, bad or expired token, disabled account (401).
        Forbidden: a terminal credential, or a role not allowed here (403).
    """
    allowed = tuple(AgentRole(role) for role in roles) or tuple(AgentRole)

    def dependency(
        session: SessionDep,
        settings: SettingsDep,
        token: Annotated[str | None, Depends(_oauth2)],
    ) -> AgentPrincipal:
        if not token:
            raise _no_credentials()
        if token.startswith(TERMINAL_CREDENTIAL_PREFIX):
            raise Forbidden(
                "réservé aux agents : un terminal ne peut pas appeler les services du guichet",
                "desk agents only: a terminal may not call desk endpoints",
            )
        claims = read_agent_token(settings.jwt_secret_value(), token)
        agent = session.scalar(select(Agent).where(Agent.username == claims.username))
        if agent is None or not agent.active:
            raise AuthenticationFailed("compte désactivé ou inconnu", "unknown or disabled account")
        if agent.role not in allowed:
            raise Forbidden(
                f"action non permise au rôle {agent.role.value} (rôles admis : "
                f"{_roles_text(allowed)})",
                f"role {agent.role.value} may not do this (allowed: {_roles_text(allowed)})",
            )
        return AgentPrincipal(agent_id=agent.id, username=agent.username, role=agent.role)

    return dependency


def require_terminal(*kinds: TerminalKind | str) -> Callable[..., TerminalPrincipal]:
    """A dependency admitting terminals whose kind is one of ``kinds`` (any kind if none).

    Raises (from the dependency):
        AuthenticationFailed: missing header or credential, unknown or inactive terminal,
            credential of another terminal (401).
        Forbidden: an agent token, or a device kind not allowed here (403).
    """
    allowed = tuple(TerminalKind(kind) for kind in kinds) or tuple(TerminalKind)

    def dependency(
        session: SessionDep,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_terminal_bearer)],
        terminal_id: Annotated[str | None, Depends(_terminal_header)],
    ) -> TerminalPrincipal:
        if bearer is None or not bearer.credentials:
            raise _no_credentials()
        credential = bearer.credentials
        if not credential.startswith(TERMINAL_CREDENTIAL_PREFIX):
            raise Forbidden(
                "réservé aux terminaux : un agent ne peut pas appeler ce service",
                "terminals only: an agent token is not accepted here",
            )
        if not terminal_id:
            raise AuthenticationFailed(
                f"en-tête {TERMINAL_HEADER} manquant", f"missing {TERMINAL_HEADER} header"
            )
        terminal = authenticate_terminal(session, terminal_id, credential)
        # Give the pooled connection back before the endpoint runs: an upload asks the pool
        # for its own short sessions, and holding this one meanwhile deadlocked the pool
        # with 15 uploads at once (docs/backend.md, "Concurrency").
        session.commit()
        if terminal.kind not in allowed:
            names = ", ".join(kind.value for kind in allowed)
            raise Forbidden(
                f"action non permise à un terminal de type {terminal.kind.value} "
                f"(types admis : {names})",
                f"a {terminal.kind.value} terminal may not do this (allowed: {names})",
            )
        return TerminalPrincipal(
            terminal_id=terminal.terminal_id,
            kind=terminal.kind,
            station_id=terminal.station_id,
            school_uai=terminal.school_uai,
            sam_serial=bytes.fromhex(terminal.sam_serial) if terminal.sam_serial else None,
        )

    return dependency


def ensure_same_terminal(principal: TerminalPrincipal, terminal_id: str) -> None:
    """Refuse a request whose body speaks for another terminal than the authenticated one.

    Raises:
        Forbidden: ``terminal_id`` is not the caller's.
    """
    if terminal_id != principal.terminal_id:
        raise Forbidden(
            f"le terminal {principal.terminal_id} ne peut pas agir pour {terminal_id}",
            f"terminal {principal.terminal_id} may not act for terminal {terminal_id}",
        )
