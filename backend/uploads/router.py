"""``POST /api/v1/uploads``: a terminal posts one signed batch (``docs/batch-format.md``).

The answer is always an acknowledgement (``regioncard.ack/1``) once the terminal is
authenticated: 200 for ``accepted`` / ``duplicate``, 4xx with ``rejected`` and a reason
otherwise, never a 5xx for a bad batch. Accepted batches are processed after the answer by the
validation loop (a background task of the app, see :func:`validation_loop_of`).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from backend.auth.dependencies import TerminalPrincipal, require_terminal
from backend.auth.roles import TerminalKind
from backend.settings import Settings
from backend.terminals.service import terminal_public_key
from backend.uploads.service import receive_batch
from backend.validation.loop import ValidationLoop
from card_schema.uploads.batch import AckStatus

router = APIRouter(prefix="/api/v1", tags=["uploads"])

UPLOADING_KINDS = (
    TerminalKind.GATE,
    TerminalKind.CANTEEN,
    TerminalKind.BIKE_SHELTER,
    TerminalKind.DESK,
    TerminalKind.PARTNER,  # consultations (docs/partner.md)
    TerminalKind.SHOP,  # aid sales and refunds (docs/shop.md)
)

_ACK_SCHEMA = {
    "type": "object",
    "required": ["format", "batch_id", "status", "detail"],
    "properties": {
        "format": {"type": "string", "enum": ["regioncard.ack/1"]},
        "batch_id": {"type": "string"},
        "status": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
        "detail": {"type": ["string", "null"]},
    },
}
_ACK_EXAMPLE = {
    "format": "regioncard.ack/1",
    "batch_id": "GATE-LIL-0042:1041-1043",
    "status": "accepted",
    "detail": None,
}


def validation_loop_of(app: Any) -> ValidationLoop:
    """The app's validation loop (``app.state.validation_loop``), made on first use.

    It verifies SAM signatures with keys the app's ``KeyService`` derives in PKCS#11 (cached in
    worker memory) and stores taps under its pseudonyms.
    """
    loop = getattr(app.state, "validation_loop", None)
    if loop is None:
        factory = cast(sessionmaker[Session], app.state.sessionmaker)
        loop = ValidationLoop(factory, app.state.keys, app.state.keys)
        app.state.validation_loop = loop
    return cast(ValidationLoop, loop)


@router.post(
    "/uploads",
    summary="Envoyer un lot signé / upload a signed batch",
    response_description="acknowledgement regioncard.ack/1",
    responses={
        200: {
            "description": "accepted or duplicate",
            "content": {"application/json": {"example": _ACK_EXAMPLE, "schema": _ACK_SCHEMA}},
        },
        400: {
            "description": "malformed batch (not canonical JSON, wrong types, unknown fields)",
            "content": {"application/json": {"schema": _ACK_SCHEMA}},
        },
        403: {
            "description": "bad signature, unknown key, or a batch of another terminal",
            "content": {"application/json": {"schema": _ACK_SCHEMA}},
        },
        409: {
            "description": "another batch with the same id and other bytes is stored",
            "content": {"application/json": {"schema": _ACK_SCHEMA}},
        },
        413: {
            "description": "batch too large (bytes or records)",
            "content": {"application/json": {"schema": _ACK_SCHEMA}},
        },
    },
)
async def upload_batch(
    request: Request,
    background: BackgroundTasks,
    terminal: Annotated[TerminalPrincipal, Depends(require_terminal(*UPLOADING_KINDS))],
) -> Response:
    """Store a batch durably and acknowledge it; records are validated after the answer.

    The upload worker also prepares the records (SAM signatures checked, pseudonyms), with the
    loop's own preparer and key caches, so the loop only reads that work back.
    """
    settings = cast(Settings, request.app.state.settings)
    body = await request.body()
    outcome = await run_in_threadpool(
        receive_batch,
        request.app.state.sessionmaker,
        terminal.terminal_id,
        body,
        terminal_public_key,
        max_bytes=settings.max_batch_bytes,
        max_records=settings.max_batch_records,
        prepare=validation_loop_of(request.app).preparer.prepare_body,
    )
    if outcome.ack.status is AckStatus.ACCEPTED and getattr(
        request.app.state, "validation_auto", True
    ):
        background.add_task(validation_loop_of(request.app).run_once)
    return Response(
        content=outcome.ack.encode(),
        status_code=outcome.status_code,
        media_type="application/json",
    )
