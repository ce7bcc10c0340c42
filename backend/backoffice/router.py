"""``/back-office/``: the supervisors' and auditors' page, and the few endpoints it needs.

The page is one template, one script and one style sheet (no build step, no CDN), calling the
JSON API like the desk page. Endpoints here: ``GET /api/v1/labels`` (French labels, any agent),
``GET /api/v1/back-office/terminals`` (terminals with their last upload and open gaps) and
``GET /api/v1/back-office/plots/{name}.png``. Everything else the page calls lives in its domain
(terminals, products, deny-lists, reconciliation, audit); docs/back-office.md has the map.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.backoffice.plots import PLOTS
from backend.denylists import service as denylists
from backend.denylists.models import DenyListVersion
from backend.dependencies import SessionDep
from backend.errors import NotFound
from backend.labels import TERMINAL_KINDS_FR, account_fr, all_labels
from backend.pages import package_templates, page_headers, static_file
from backend.pagination import PageDep
from backend.terminals.service import list_terminals
from backend.uploads.models import UploadBatch
from backend.validation.models import Gap

router = APIRouter(tags=["back-office"])

Overseer = Annotated[
    AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))
]
STATIC_FILES = {"backoffice.js": "text/javascript", "backoffice.css": "text/css"}
PAGE_HEADERS = page_headers("'self' blob: data:")  # the plots are drawn from blobs


@router.get("/api/v1/labels", tags=["labels"])
def labels(_: Annotated[AgentPrincipal, Depends(require_agent())]) -> dict[str, dict[str, str]]:
    """French labels of anomaly kinds, card and job states, applications, roles (any agent)."""
    return all_labels()


@router.get("/api/v1/labels/accounts", tags=["labels"])
def account_labels(
    _: Annotated[AgentPrincipal, Depends(require_agent())],
    account: Annotated[list[str], Query(max_length=200)],
) -> dict[str, str]:
    """French labels of ledger accounts (``?account=funder:region:canteen&account=...``)."""
    return {name: account_fr(name) for name in account}


@router.get("/api/v1/back-office/terminals")
def terminals(session: SessionDep, _: Overseer, page: PageDep) -> list[dict[str, Any]]:
    """Every terminal with its last accepted upload and its open sequence gaps."""
    last = dict(
        session.execute(
            select(UploadBatch.terminal_id, func.max(UploadBatch.received_at)).group_by(
                UploadBatch.terminal_id
            )
        ).all()
    )
    gaps = dict(
        session.execute(
            select(Gap.subject, func.count())
            .where(Gap.scope == "terminal", Gap.closed_at.is_(None))
            .group_by(Gap.subject)
        ).all()
    )
    out = []
    for terminal in list_terminals(session):
        received = last.get(terminal.terminal_id)
        out.append(
            {
                "terminal_id": terminal.terminal_id,
                "kind": terminal.kind.value,
                "kind_fr": TERMINAL_KINDS_FR.get(terminal.kind.value, terminal.kind.value),
                "label": terminal.label,
                "station_id": terminal.station_id,
                "school_uai": terminal.school_uai,
                "sam_serial": terminal.sam_serial,
                "active": terminal.active,
                "last_upload_at": received.isoformat() if received else None,
                "open_gaps": int(gaps.get(terminal.terminal_id, 0)),
            }
        )
    return page.of(out)


@router.get("/api/v1/back-office/deny-list")
def deny_list(session: SessionDep, _: Overseer) -> dict[str, Any]:
    """The deny-list in force: its version, when it was signed, its entries."""
    version = denylists.current_version(session)
    row = session.get(DenyListVersion, version) if version else None
    return {
        "version": version,
        "issued_at": row.issued_at.isoformat() if row else None,
        "entries": denylists.listed_serials(session),
    }


@router.get(
    "/api/v1/back-office/plots/{name}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def plot(
    name: str,
    session: SessionDep,
    _: Overseer,
    start: Annotated[datetime | None, Query(description="from (inclusive)")] = None,
    end: Annotated[datetime | None, Query(description="to (exclusive)")] = None,
) -> Response:
    """A plot: ``taps-per-hour``, ``revenue-per-operator``, ``anomalies-per-day``."""
    draw = PLOTS.get(name)
    if draw is None:
        raise NotFound(f"graphique {name} inconnu", f"unknown plot {name}")
    return Response(draw(session, start, end), media_type="image/png")


# -- the page ----------------------------------------------------------------------------------
_templates = package_templates("backend.backoffice")


@router.get("/back-office", include_in_schema=False)
@router.get("/back-office/", response_class=HTMLResponse, include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    """The back office page (French)."""
    idle = request.app.state.settings.desk_idle_lock_seconds
    html = _templates.get_template("backoffice.html").render(idle_lock_seconds=idle)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/back-office/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The page's script and style sheet (listed: nothing else is served)."""
    return static_file("backend.backoffice", STATIC_FILES, name)
