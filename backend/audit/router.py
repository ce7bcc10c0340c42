"""``/api/v1/audit``: the audit trail, readable by auditors only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.audit import service
from backend.audit.schemas import AuditEntryOut
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.dependencies import SessionDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryOut])
def list_entries(
    session: SessionDep,
    _: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.AUDITOR))],
    agent: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AuditEntryOut]:
    """Audit rows, newest first (auditors only)."""
    rows = service.entries(session, agent=agent, subject=subject, since=since, limit=limit)
    return [AuditEntryOut.model_validate(r) for r in rows]
