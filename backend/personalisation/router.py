"""``/api/v1/personalisation``: wrapped card keys and encoded records for desk stations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select

from backend.audit import service as audit
from backend.auth.dependencies import TerminalPrincipal, require_terminal
from backend.auth.roles import TerminalKind
from backend.dependencies import KeysDep, SessionDep
from backend.desk.models import FINAL_STATUSES, DeskJob
from backend.errors import Forbidden
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
    desk: Annotated[TerminalPrincipal, Depends(require_terminal(TerminalKind.DESK))],
) -> PersonalisationOut:
    """Per-card keys (wrapped, never in clear) and initial records; desk stations only.

    Only for a card on which this desk station has an open job (``/api/v1/desk/jobs``: taken,
    card attached, not finished); every answer is audited under the job's number.
    """
    serial = body.card_serial.upper()
    job = session.scalar(
        select(DeskJob)
        .where(
            DeskJob.desk_terminal_id == desk.terminal_id,
            DeskJob.card_serial == serial,
            DeskJob.status.not_in(FINAL_STATUSES),
        )
        .order_by(DeskJob.id.desc())
        .limit(1)
    )
    if job is None:
        raise Forbidden(
            f"aucune demande en cours à ce guichet pour la carte {serial}",
            f"no open desk job of this station for card {serial}",
        )
    audit.record(
        session,
        agent=desk.terminal_id,
        role=TerminalKind.DESK.value,
        action="personalisation",
        subject=f"card:{serial}",
        reason=f"demande {job.id} / desk job {job.id}",
    )
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
