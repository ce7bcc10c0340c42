"""``/api/v1/personalisation``: wrapped card keys and encoded records for desk stations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.auth.dependencies import TerminalPrincipal, require_terminal
from backend.auth.roles import TerminalKind
from backend.dependencies import KeysDep, SessionDep
from backend.keys.service import TRANSPORT_LABEL
from backend.personalisation import service
from backend.personalisation.schemas import (
    EncodedRecordOut,
    PersonalisationIn,
    PersonalisationOut,
    WrappedKeyOut,
)

router = APIRouter(prefix="/api/v1/personalisation", tags=["personalisation"])


@router.post("", response_model=PersonalisationOut)
def personalise(
    body: PersonalisationIn,
    session: SessionDep,
    keys: KeysDep,
    _: Annotated[TerminalPrincipal, Depends(require_terminal(TerminalKind.DESK))],
) -> PersonalisationOut:
    """Per-card keys (wrapped, never in clear) and initial records; desk stations only."""
    wrapped, records = service.personalisation_data(
        session,
        keys,
        serial=body.card_serial,
        applications=body.applications,
        records=[(r.record_type, r.values) for r in body.records],
    )
    return PersonalisationOut(
        card_serial=body.card_serial.upper(),
        transport_key=TRANSPORT_LABEL,
        keys=[WrappedKeyOut(**k.to_json()) for k in wrapped],
        records=[EncodedRecordOut(record_type=r.record_type, data=r.data.hex()) for r in records],
    )
