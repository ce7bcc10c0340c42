"""``/api/v1/tariffs``: supervisors publish tariff tables; terminals and agents read the signed one.

| endpoint | who |
|---|---|
| ``POST /api/v1/tariffs`` (publish a table) | supervisor |
| ``GET /api/v1/tariffs/current`` (signed envelope) | any terminal kind, any agent role |
| ``GET /api/v1/tariffs`` (published versions) | any agent role |

The seed file (a table published as version 1 when none exists yet) is ``settings.
tariff_seed_file`` when the settings carry one, else the ``REGIONCARD_TARIFF_SEED_FILE``
environment variable (:class:`TariffSettings`); none by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.auth.dependencies import (
    TERMINAL_HEADER,
    AgentPrincipal,
    TerminalPrincipal,
    require_agent,
    require_terminal,
)
from backend.auth.roles import AgentRole
from backend.auth.security import TERMINAL_CREDENTIAL_PREFIX
from backend.denylists.schemas import SignedEnvelopeOut
from backend.dependencies import KeysDep, SessionDep, SettingsDep
from backend.errors import AuthenticationFailed
from backend.pagination import PageDep
from backend.tariffs import service
from backend.tariffs.schemas import TariffVersionOut

router = APIRouter(prefix="/api/v1/tariffs", tags=["tariffs"])

Supervisor = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Reader = Annotated[AgentPrincipal, Depends(require_agent())]

# Same schemes as backend.auth.dependencies (same names: one entry each in the OpenAPI document).
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="terminal",
    description="Terminal credential (rct_...) issued at registration",
)
_terminal_id = APIKeyHeader(name=TERMINAL_HEADER, auto_error=False, scheme_name="terminal_id")
_any_agent = require_agent()
_any_terminal = require_terminal()


class TariffSettings(BaseSettings):
    """Tariff settings read from the environment (``REGIONCARD_TARIFF_SEED_FILE``).

    Attributes:
        tariff_seed_file: JSON table published as version 1 on the first read when none exists.
    """

    model_config = SettingsConfigDict(env_prefix="REGIONCARD_", extra="ignore")

    tariff_seed_file: Path | None = None


def seed_file(request: Request) -> Path | None:
    """The configured seed file, if any (settings first, then the environment)."""
    configured = getattr(request.app.state.settings, "tariff_seed_file", None)
    if configured:
        return Path(configured)
    return TariffSettings().tariff_seed_file


def agent_or_terminal(
    session: SessionDep,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    terminal_id: Annotated[str | None, Depends(_terminal_id)],
) -> AgentPrincipal | TerminalPrincipal:
    """Admit a terminal of any kind (``rct_...`` credential) or a desk agent of any role.

    Raises:
        AuthenticationFailed: no credentials, or credentials that identify nobody (401).
    """
    if bearer is None or not bearer.credentials:
        raise AuthenticationFailed(
            "authentification requise", "authentication required (Authorization: Bearer ...)"
        )
    if bearer.credentials.startswith(TERMINAL_CREDENTIAL_PREFIX):
        return _any_terminal(session, bearer, terminal_id)
    return _any_agent(session, settings, bearer.credentials)


@router.post("", response_model=TariffVersionOut, status_code=201)
def publish(
    session: SessionDep,
    keys: KeysDep,
    supervisor: Supervisor,
    table: Annotated[
        dict[str, Any],
        Body(description="the whole table, format of docs/tariffs.md; its version is replaced"),
    ],
) -> TariffVersionOut:
    """Publish a tariff table as the next version, signed (supervisors only)."""
    row = service.publish(session, keys, table, published_by=supervisor.username)
    return TariffVersionOut.model_validate(row)


@router.get("/current", response_model=SignedEnvelopeOut)
def current(
    request: Request,
    session: SessionDep,
    keys: KeysDep,
    _: Annotated[AgentPrincipal | TerminalPrincipal, Depends(agent_or_terminal)],
) -> SignedEnvelopeOut:
    """The latest tariff table in its signed envelope (kind ``tariff``)."""
    envelope = service.current_envelope(session, keys, seed_file=seed_file(request))
    return SignedEnvelopeOut.model_validate(envelope)


@router.get("", response_model=list[TariffVersionOut])
def versions(session: SessionDep, _: Reader, page: PageDep) -> list[TariffVersionOut]:
    """Published versions, newest first, without their tables (any agent role)."""
    return page.of([TariffVersionOut.model_validate(row) for row in service.versions(session)])
