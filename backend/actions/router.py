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
from backend.errors import Forbidden, WriteNotProven
from backend.pagination import PageDep

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
    keys: KeysDep,
    terminal: Annotated[TerminalPrincipal, Depends(require_terminal())],
) -> CardActionOut:
    """A terminal confirms it wrote an action (uploads also confirm; both are idempotent).

    The write must be proven: a committed card session of this terminal, on this card and
    application, with this card counter, uploaded and validated first (409 otherwise).
    """
    action = session.get(service.CardAction, action_id)
    if action is not None and action.application not in TERMINAL_WRITES[terminal.kind]:
        raise Forbidden(
            f"un terminal {terminal.kind.value} n'écrit pas l'application {action.application}",
            f"a {terminal.kind.value} terminal does not write application {action.application}",
        )
    if action is not None and not service.write_proven(
        session,
        keys,
        terminal_id=terminal.terminal_id,
        card_serial=body.card_serial,
        card_tx_counter=body.card_tx_counter,
        application=action.application.value,
    ):
        raise WriteNotProven(
            "aucune session de carte téléversée par ce terminal ne prouve cette écriture "
            f"(compteur {body.card_tx_counter}) : téléversez d'abord le lot",
            f"no uploaded card session of this terminal proves this write (counter "
            f"{body.card_tx_counter}): upload the batch first",
        )
    return CardActionOut.model_validate(
        service.confirm_action(session, body.card_serial, action_id, body.card_tx_counter)
    )


@router.get("/cards/{serial}", response_model=list[CardActionOut])
def of_card(
    serial: str,
    session: SessionDep,
    _: Annotated[AgentPrincipal, Depends(require_agent())],
    page: PageDep,
) -> list[CardActionOut]:
    """Every action of one card (any agent role)."""
    return page.of(
        [CardActionOut.model_validate(a) for a in service.actions_of_card(session, serial.upper())]
    )
