"""Writing and reading the audit trail (no FastAPI here)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.audit.models import AuditEntry
from backend.columns import utcnow
from backend.errors import InvalidRequest

if TYPE_CHECKING:
    from backend.auth.dependencies import AgentPrincipal

MIN_REASON_LENGTH = 3


def record(
    session: Session, *, agent: str, role: str, action: str, subject: str, reason: str
) -> AuditEntry:
    """Append one audit row (in the caller's transaction: no lookup without its row).

    Raises:
        InvalidRequest: no reason given.
    """
    reason = reason.strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise InvalidRequest(
            "motif de consultation obligatoire (paramètre reason)",
            "a reason for the lookup is required (reason parameter)",
        )
    entry = AuditEntry(
        at=utcnow(), agent=agent, role=role, action=action, subject=subject, reason=reason[:200]
    )
    session.add(entry)
    session.flush()
    return entry


def record_lookup(
    session: Session, agent: AgentPrincipal, *, action: str, subject: str, reason: str
) -> AuditEntry:
    """:func:`record` for a lookup by an authenticated agent (its user name and role).

    Raises:
        InvalidRequest: no reason given.
    """
    return record(
        session,
        agent=agent.username,
        role=agent.role.value,
        action=action,
        subject=subject,
        reason=reason,
    )


def entries(
    session: Session,
    *,
    agent: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[AuditEntry]:
    """Audit rows, newest first, optionally filtered."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if agent is not None:
        query = query.where(AuditEntry.agent == agent)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query))
