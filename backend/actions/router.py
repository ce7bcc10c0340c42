"""``/api/v1/action-lists``: signed pending writes for terminals; card actions for agents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.actions import service
from backend.actions.schemas import CardActionOut, ConfirmIn
from backend.auth.dependencies import (
    AgentPrincipal,
    TerminalPrincipal,
    require_agent,
    require_terminal,
)
from backend.auth.roles import TERMINAL_WRITES
from backend.bounds import PathId
from backend.denylists.schemas import SignedEnvelopeOut
from backend.dependencies import KeysDep, SessionDep
from backend.errors import Forbidden

router = APIRouter(prefix="/api/v1/action-lists", tags=["action lists"])


@router.get("/current", response_model=SignedEnvelopeOut)
def current(
    session: SessionDep,
    keys: KeysDep,
    terminal: Annotated[TerminalPrincipal, Depends(require_terminal())],
) -> SignedEnvelopeOut:
    """Pending writes for the applications this kind of terminal writes, signed."""
    apps = TERMINAL_WRITES[terminal.kind]
    return SignedEnvelopeOut.model_validate(service.signed_action_list(session, keys, apps))


@router.post("/{action_id}/confirm", response_model=CardActionOut)
def confirm(
    action_id: PathId,
    body: ConfirmIn,
    session: SessionDep,
    terminal: Annotated[TerminalPrincipal, Depends(require_terminal())],
) -> CardActionOut:
    """A terminal confirms it wrote an action (uploads also confirm; both are idempotent)."""
    action = session.get(service.CardAction, action_id)
    if action is not None and action.application not in TERMINAL_WRITES[terminal.kind]:
        raise Forbidden(
            f"un terminal {terminal.kind.value} n'écrit pas l'application {action.application}",
            f"a {terminal.kind.value} terminal does not write application {action.application}",
        )
    return CardActionOut.model_validate(
        service.confirm_action(session, body.card_serial, action_id, body.card_tx_counter)
    )


@router.get("/cards/{serial}", response_model=list[CardActionOut])
def of_card(
    serial: str,
    session: SessionDep,
    _: Annotated[AgentPrincipal, Depends(require_agent())],
) -> list[CardActionOut]:
    """Every action of one card (any agent role)."""
    return [
        CardActionOut.model_validate(a) for a in service.actions_of_card(session, serial.upper())
    ]
