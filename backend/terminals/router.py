"""``/api/v1/terminals``: the device registry (supervisors manage it, auditors read it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from backend.auth.dependencies import (
    AgentPrincipal,
    TerminalPrincipal,
    require_agent,
    require_terminal,
)
from backend.auth.roles import AgentRole
from backend.dependencies import SessionDep
from backend.pagination import PageDep
from backend.terminals import service
from backend.terminals.models import Terminal, TerminalKey
from backend.terminals.schemas import (
    CredentialOut,
    TerminalIn,
    TerminalKeyIn,
    TerminalKeyOut,
    TerminalOut,
    TerminalRegistered,
)

router = APIRouter(prefix="/api/v1/terminals", tags=["terminals"])

Supervisor = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Reader = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))]


def _key_out(key: TerminalKey) -> TerminalKeyOut:
    return TerminalKeyOut(
        key_id=key.key_id,
        public_key=key.public_key.hex(),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def _out(terminal: Terminal) -> TerminalOut:
    return TerminalOut(
        terminal_id=terminal.terminal_id,
        kind=terminal.kind,
        label=terminal.label,
        station_id=terminal.station_id,
        school_uai=terminal.school_uai,
        sam_serial=terminal.sam_serial,
        active=terminal.active,
        keys=[_key_out(k) for k in terminal.keys],
    )


@router.post("", response_model=TerminalRegistered, status_code=status.HTTP_201_CREATED)
def register_terminal(body: TerminalIn, session: SessionDep, _: Supervisor) -> TerminalRegistered:
    """Register a device; the answer holds its bearer credential, shown only this once."""
    registered = service.register_terminal(
        session,
        terminal_id=body.terminal_id,
        kind=body.kind,
        label=body.label,
        station_id=body.station_id,
        school_uai=body.school_uai,
        sam_serial=bytes.fromhex(body.sam_serial) if body.sam_serial else None,
        public_key=bytes.fromhex(body.public_key) if body.public_key else None,
    )
    session.refresh(registered.terminal)
    return TerminalRegistered(
        **_out(registered.terminal).model_dump(), credential=registered.credential
    )


@router.get("", response_model=list[TerminalOut])
def list_terminals(session: SessionDep, _: Reader, page: PageDep) -> list[TerminalOut]:
    """Every registered device."""
    return page.of([_out(t) for t in service.list_terminals(session)])


@router.get("/self", response_model=TerminalOut)
def this_terminal(
    session: SessionDep, terminal: Annotated[TerminalPrincipal, Depends(require_terminal())]
) -> TerminalOut:
    """What the backend knows about the calling terminal (a connectivity check for devices)."""
    return _out(service.get_terminal(session, terminal.terminal_id))


@router.get("/{terminal_id}", response_model=TerminalOut)
def get_terminal(terminal_id: str, session: SessionDep, _: Reader) -> TerminalOut:
    """One registered device."""
    return _out(service.get_terminal(session, terminal_id))


@router.post(
    "/{terminal_id}/keys", response_model=TerminalKeyOut, status_code=status.HTTP_201_CREATED
)
def add_key(
    terminal_id: str, body: TerminalKeyIn, session: SessionDep, _: Supervisor
) -> TerminalKeyOut:
    """Register one more Ed25519 public key (key rotation: the old one stays until revoked)."""
    return _key_out(service.add_terminal_key(session, terminal_id, bytes.fromhex(body.public_key)))


@router.delete("/{terminal_id}/keys/{key_id}", response_model=TerminalKeyOut)
def revoke_key(terminal_id: str, key_id: str, session: SessionDep, _: Supervisor) -> TerminalKeyOut:
    """Revoke a key: batches signed with it are refused from now on."""
    return _key_out(service.revoke_terminal_key(session, terminal_id, key_id))


@router.post("/{terminal_id}/credential", response_model=CredentialOut)
def rotate_credential(terminal_id: str, session: SessionDep, _: Supervisor) -> CredentialOut:
    """Issue a new bearer credential; the old one stops working at once."""
    return CredentialOut(
        terminal_id=terminal_id, credential=service.rotate_credential(session, terminal_id)
    )


@router.post("/{terminal_id}/deactivate", response_model=TerminalOut)
def deactivate(terminal_id: str, session: SessionDep, _: Supervisor) -> TerminalOut:
    """Decommission a device: its credential and keys are refused from now on."""
    return _out(service.deactivate_terminal(session, terminal_id))
