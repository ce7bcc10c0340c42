"""``/api/v1/desk``: desk jobs (agents create and follow them, desk stations take them); ``/desk/``.

Agents (JWT): ``POST /jobs``, ``GET /jobs/{id}``, ``GET /jobs?holder_id=&reason=`` (audited),
``GET /jobs/{id}/receipt.pdf``, ``GET /desks``. Desk terminals (credential): ``GET /jobs/next``,
``GET /jobs/{id}/station``, ``POST /jobs/{id}/card``, ``POST /jobs/{id}/progress``.
The page: ``GET /desk/`` and its two static files, no build step, no CDN.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from backend.audit import service as audit
from backend.auth.dependencies import (
    AgentPrincipal,
    TerminalPrincipal,
    require_agent,
    require_terminal,
)
from backend.auth.roles import READING_ROLES, WRITING_ROLES, TerminalKind
from backend.bounds import PathId, QueryId
from backend.dependencies import KeysDep, SessionDep
from backend.desk import service
from backend.desk.models import DeskJob, JobStatus
from backend.desk.receipt import ReceiptData, receipt_pdf
from backend.desk.schemas import CardAttachIn, JobIn, JobOut, ProgressIn, StationJobOut
from backend.errors import Conflict, NotFound
from backend.holders.service import get_holder
from backend.pages import package_templates, page_headers, static_file
from backend.terminals.models import Terminal

router = APIRouter(tags=["desk"])
API = "/api/v1/desk"

Writer = Annotated[AgentPrincipal, Depends(require_agent(*WRITING_ROLES))]
Reader = Annotated[AgentPrincipal, Depends(require_agent(*READING_ROLES))]
Desk = Annotated[TerminalPrincipal, Depends(require_terminal(TerminalKind.DESK))]
Reason = Annotated[
    str, Query(min_length=3, max_length=200, description="why the agent looks this up (audited)")
]
STATIC_FILES = {"desk.js": "text/javascript", "desk.css": "text/css"}
PAGE_HEADERS = page_headers()


def _job_out(job: DeskJob) -> JobOut:
    done, total = service.progress_of(job)
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        desk_terminal_id=job.desk_terminal_id,
        holder_id=job.holder_id,
        card_serial=job.card_serial,
        replaces_serial=job.replaces_serial,
        message=job.message,
        steps_done=done,
        steps_total=total,
        current_step=job.current_step,
        summary=json.loads(job.summary),
        created_by=job.created_by,
        created_at=job.created_at,
        finished_at=job.finished_at,
        receipt_url=f"{API}/jobs/{job.id}/receipt.pdf" if job.status == JobStatus.DONE else None,
    )


def _station_out(job: DeskJob) -> StationJobOut:
    return StationJobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        card_serial=job.card_serial,
        steps_done=json.loads(job.steps_done),
        plan=service.plan_of(job),
        request=json.loads(job.request),
        message=job.message,
    )


# -- agents ------------------------------------------------------------------------------------
@router.get(f"{API}/desks", response_model=list[str])
def desks(session: SessionDep, _: Reader) -> list[str]:
    """Active desk stations (terminal ids), for the page's desk choice."""
    query = select(Terminal.terminal_id).where(
        Terminal.kind == TerminalKind.DESK, Terminal.active.is_(True)
    )
    return sorted(session.scalars(query))


@router.post(f"{API}/jobs", response_model=JobOut, status_code=status.HTTP_201_CREATED)
def create_job(body: JobIn, session: SessionDep, agent: Writer) -> JobOut:
    """Ask a desk station to write a card (issue, update, replace)."""
    request = service.JobRequest(
        kind=body.kind,
        desk_terminal_id=body.desk_terminal_id,
        holder_id=body.holder_id,
        anonymous=body.anonymous,
        card_serial=body.card_serial.upper() if body.card_serial else None,
        applications=list(body.applications),
        add_applications=list(body.add_applications),
        remove_applications=list(body.remove_applications),
        contracts=[c if isinstance(c, int) else c.code for c in body.contracts],
        contract_options=[
            {} if isinstance(c, int) else c.model_dump(exclude={"code"}, exclude_defaults=True)
            for c in body.contracts
        ],
        wallet_reload_cents=body.wallet_reload_cents,
        school_aid=[a.model_dump(mode="json") for a in body.school_aid],
        student=body.student.model_dump(exclude_none=True, exclude_defaults=True),
        profiles=[p.model_dump(mode="json") for p in body.profiles],
        valid_from=body.valid_from,
        reason=body.reason,
    )
    return _job_out(service.create_job(session, request, by=agent.username))


# -- desk stations (before /jobs/{job_id}: "next" is not an id) --------------------------------
@router.get(
    f"{API}/jobs/next",
    response_model=StationJobOut,
    responses={204: {"description": "no job for this desk"}},
)
def next_job(session: SessionDep, desk: Desk) -> StationJobOut | Response:
    """The desk's next job (its unfinished one first); 204 when there is none."""
    job = service.next_job(session, desk.terminal_id)
    if job is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return _station_out(job)


@router.get(f"{API}/jobs/{{job_id}}/station", response_model=StationJobOut)
def station_job(job_id: PathId, session: SessionDep, desk: Desk) -> StationJobOut:
    """One of this desk's jobs, as the station sees it (plan included)."""
    job = service.get_job(session, job_id)
    if job.desk_terminal_id != desk.terminal_id:
        raise NotFound(f"demande {job_id} inconnue", f"unknown desk job {job_id}")
    return _station_out(job)


@router.post(f"{API}/jobs/{{job_id}}/card", response_model=StationJobOut)
def attach_card(
    job_id: PathId, body: CardAttachIn, session: SessionDep, keys: KeysDep, desk: Desk
) -> StationJobOut:
    """The card on the reader: registered and planned once (wrapped keys, steps)."""
    job = service.attach_card(
        session,
        keys,
        service.get_job(session, job_id),
        terminal_id=desk.terminal_id,
        card_serial=body.card_serial,
        snapshot=body.snapshot,
    )
    return _station_out(job)


@router.post(f"{API}/jobs/{{job_id}}/progress", response_model=StationJobOut)
def progress(job_id: PathId, body: ProgressIn, session: SessionDep, desk: Desk) -> StationJobOut:
    """A step on the card, a status change or the step being written."""
    job = service.report_progress(
        session,
        service.get_job(session, job_id),
        terminal_id=desk.terminal_id,
        step_id=body.step_id,
        card_tx_counter=body.card_tx_counter,
        status=body.status,
        message=body.message,
        current=body.current,
    )
    return _station_out(job)


# -- agents, per job ---------------------------------------------------------------------------
@router.post(f"{API}/jobs/{{job_id}}/retry", response_model=JobOut)
def retry_job(job_id: PathId, session: SessionDep, agent: Writer) -> JobOut:
    """Put a failed job back in its desk's queue (resumed where it stopped)."""
    return _job_out(service.retry_job(session, service.get_job(session, job_id), by=agent.username))


@router.get(f"{API}/jobs/{{job_id}}", response_model=JobOut)
def get_job(job_id: PathId, session: SessionDep, _: Reader) -> JobOut:
    """Follow a job (the page polls this while the card is written)."""
    return _job_out(service.get_job(session, job_id))


@router.get(f"{API}/jobs", response_model=list[JobOut])
def jobs_of_holder(
    holder_id: QueryId, reason: Reason, session: SessionDep, agent: Reader
) -> list[JobOut]:
    """A holder's desk jobs; audited with its reason like every lookup."""
    get_holder(session, holder_id)
    audit.record_lookup(
        session, agent, action="desk.jobs", subject=f"holder:{holder_id}", reason=reason
    )
    return [_job_out(job) for job in service.jobs_of_holder(session, holder_id)]


@router.get(
    f"{API}/jobs/{{job_id}}/receipt.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def receipt(job_id: PathId, session: SessionDep, _: Reader) -> Response:
    """The receipt of a finished job (PDF, French)."""
    job = service.get_job(session, job_id)
    if job.status != JobStatus.DONE or job.card_serial is None:
        raise Conflict("reçu disponible une fois la carte écrite", "job not done yet")
    holder = get_holder(session, job.holder_id)
    name = None if holder.anonymous else f"{holder.given_name} {holder.family_name}"
    summary = json.loads(job.summary)
    pdf = receipt_pdf(
        ReceiptData(
            number=job.id,
            at=job.finished_at or job.updated_at,
            agent=job.created_by,
            holder=name,
            card_serial=job.card_serial,
            applications=summary.get("applications", []),
            removed=summary.get("removed", []),
            loads=summary.get("loads", []),
            replaces=summary.get("replaces"),
            kind=job.kind.value,
        )
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="recu-{job.id}.pdf"'},
    )


# -- the page ----------------------------------------------------------------------------------
_templates = package_templates("backend.desk")


@router.get("/desk", include_in_schema=False)
@router.get("/desk/", response_class=HTMLResponse, include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    """The desk page (French): everything else is the JSON API, called by ``desk.js``."""
    idle = request.app.state.settings.desk_idle_lock_seconds
    html = _templates.get_template("desk.html").render(api=API, idle_lock_seconds=idle)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/desk/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The page's script and style sheet (two files, listed: nothing else is served)."""
    return static_file("backend.desk", STATIC_FILES, name)
