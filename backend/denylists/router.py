"""``/api/v1/deny-lists``: signed deny-lists for terminals; entries for supervisors and auditors."""

from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from backend.auth.dependencies import (
    AgentPrincipal,
    TerminalPrincipal,
    require_agent,
    require_terminal,
)
from backend.auth.roles import AgentRole
from backend.bounds import MAX_DB_ID
from backend.denylists import service
from backend.denylists.models import DenyListEntry
from backend.denylists.schemas import (
    DenyListEntryOut,
    PublicKeyOut,
    SignedEnvelopeOut,
    VersionOut,
)
from backend.dependencies import KeysDep, SessionDep
from backend.pagination import PageDep

router = APIRouter(prefix="/api/v1/deny-lists", tags=["deny-lists"])

AnyTerminal = Annotated[TerminalPrincipal, Depends(require_terminal())]
Supervisor = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Reader = Annotated[AgentPrincipal, Depends(require_agent())]


@router.get("/public-key", response_model=PublicKeyOut)
def public_key(keys: KeysDep) -> PublicKeyOut:
    """The table-signing public key (public; terminals are installed with it)."""
    raw = keys.table_signing_public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PublicKeyOut(public_key=raw.hex())


@router.get("/full", response_model=SignedEnvelopeOut)
def full_list(
    session: SessionDep,
    _: AnyTerminal,
    version: Annotated[int | None, Query(ge=1, le=MAX_DB_ID)] = None,
) -> SignedEnvelopeOut:
    """The signed full deny-list (latest version by default)."""
    return SignedEnvelopeOut.model_validate(service.full_envelope(session, version))


@router.get("/delta", response_model=list[SignedEnvelopeOut])
def deltas(
    session: SessionDep, _: AnyTerminal, since: Annotated[int, Query(ge=0, le=MAX_DB_ID)]
) -> list[SignedEnvelopeOut]:
    """The signed deltas from version ``since`` to the latest, oldest first."""
    return [SignedEnvelopeOut.model_validate(e) for e in service.delta_envelopes(session, since)]


@router.get("/entries", response_model=list[DenyListEntryOut])
def entries(session: SessionDep, _: Reader, page: PageDep) -> list[DenyListEntryOut]:
    """Serials on the list now (any agent role)."""
    rows = session.scalars(
        select(DenyListEntry)
        .where(DenyListEntry.removed_version.is_(None))
        .order_by(DenyListEntry.card_serial)
    )
    return page.of([DenyListEntryOut.model_validate(r) for r in rows])


@router.post("/publish", response_model=VersionOut)
def publish(session: SessionDep, keys: KeysDep, _: Supervisor) -> VersionOut:
    """Re-sign and publish the current list as a new version (the daily push)."""
    return VersionOut(version=service.publish(session, keys).version)


@router.delete("/entries/{serial}", response_model=VersionOut)
def remove_entry(serial: str, session: SessionDep, keys: KeysDep, _: Supervisor) -> VersionOut:
    """Take a serial off the list and publish (supervisors only)."""
    return VersionOut(version=service.remove(session, keys, serial).version)
