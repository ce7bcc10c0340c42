"""``/api/v1/reconciliation``: reports (supervisors, auditors), period close (supervisors)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from backend.audit import service as audit
from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.bounds import BodyInt, IsoDateTime, PathId
from backend.dependencies import SessionDep
from backend.errors import NotFound
from backend.ledger.service import check_balanced
from backend.pagination import PageDep
from backend.reconciliation import service, statement
from backend.reconciliation.models import ClearingPeriod

router = APIRouter(prefix="/api/v1/reconciliation", tags=["reconciliation"])

Reader = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))]
Closer = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Start = Annotated[IsoDateTime, Query(description="period start (inclusive), UTC")]
End = Annotated[IsoDateTime, Query(description="period end (exclusive), UTC")]


class ClearingRequest(BaseModel):
    """Close a period ``[start, end)``."""

    period_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    start: IsoDateTime
    end: IsoDateTime
    pass_pool: BodyInt = Field(default=0, ge=0, description="PLUM season-pass revenue, eurocents")


@router.get("/cards/{card_pseudonym}", summary="Rapprochement par carte / per card")
def card(card_pseudonym: str, session: SessionDep, _: Reader) -> dict[str, Any]:
    """Taps, purse chain, ledger balances and anomalies of one card pseudonym."""
    return service.card_report(session, card_pseudonym)


@router.get("/terminals/{terminal_id}", summary="Rapprochement par terminal / per terminal")
def terminal(terminal_id: str, session: SessionDep, _: Reader) -> dict[str, Any]:
    """Taps by status, sequence gaps and anomalies of one terminal."""
    return service.terminal_report(session, terminal_id)


@router.get("/schools", summary="Par établissement et financeur / per school and funder")
def schools(start: Start, end: End, session: SessionDep, _: Reader) -> dict[str, Any]:
    """Aid and wallet spent per school, and totals per funder."""
    return service.school_report(session, start, end)


@router.get("/operators", summary="Par exploitant / per transit operator")
def operators(start: Start, end: End, session: SessionDep, _: Reader) -> dict[str, Any]:
    """Taps, pass validations and revenue per operator."""
    return service.operator_report(session, start, end)


@router.get("/merchants", summary="Par commerçant / per merchant")
def merchants(start: Start, end: End, session: SessionDep, _: Reader) -> dict[str, Any]:
    """Aid spent at each merchant terminal, per purpose."""
    return service.merchant_report(session, start, end)


@router.get("/anomalies", summary="Anomalies")
def anomalies(
    session: SessionDep,
    _: Reader,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    open_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    terminal_id: Annotated[str | None, Query(max_length=64)] = None,
    card_pseudonym: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
) -> list[dict[str, Any]]:
    """Latest anomalies raised by the validation loop and the upload service (French names in
    ``kind_fr``, ``state_fr``), filtered by kind, terminal, card pseudonym and state."""
    return service.list_anomalies(
        session,
        kind=kind,
        open_only=open_only,
        limit=limit,
        terminal_id=terminal_id,
        card_pseudonym=card_pseudonym,
        state=state,
    )


class ResolveIn(BaseModel):
    """Why an anomaly is closed (kept with it, and in the audit trail)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=300)


@router.post("/anomalies/{anomaly_id}/resolve", summary="Résoudre une anomalie / resolve")
def resolve(
    anomaly_id: PathId, body: ResolveIn, session: SessionDep, agent: Closer
) -> dict[str, Any]:
    """A supervisor explains an anomaly (audited); it is kept, marked resolved."""
    resolved = service.resolve_anomaly(session, anomaly_id, body.reason, by=agent.username)
    audit.record_lookup(
        session,
        agent,
        action="anomaly.resolve",
        subject=f"anomaly:{anomaly_id}",
        reason=body.reason,
    )
    return resolved


@router.get("/ledger/check", summary="Équilibre du grand livre / ledger balance")
def ledger_check(session: SessionDep, _: Reader) -> dict[str, int]:
    """Every entry sums to zero (422 naming the entries that do not)."""
    return asdict(check_balanced(session))


@router.post("/clearing", summary="Clôturer une période / close a period")
def close(request: ClearingRequest, session: SessionDep, _: Closer) -> dict[str, Any]:
    """Share the pass pool, settle every payee for the period, post it all to the ledger."""
    result = service.close_period(
        session, request.period_id, request.start, request.end, pass_pool=request.pass_pool
    )
    return {
        "period_id": result.period_id,
        "pass_shares": result.pass_shares,
        "settlements": [asdict(s) for s in result.settlements],
        "ledger": asdict(result.ledger),
    }


@router.get("/clearing/{period_id}", summary="Règlements d'une période / settlements")
def settlements(period_id: str, session: SessionDep, _: Reader) -> list[dict[str, Any]]:
    """Settlements of a closed period."""
    return [asdict(s) for s in service.period_settlements(session, period_id)]


@router.get("/clearing", summary="Périodes clôturées / closed periods")
def periods(session: SessionDep, _: Reader, page: PageDep) -> list[dict[str, Any]]:
    """Closed periods, newest first."""
    rows = session.scalars(select(ClearingPeriod).order_by(ClearingPeriod.id.desc()))
    return page.of(
        [
            {
                "period_id": p.period_id,
                "start": p.starts_at.isoformat(),
                "end": p.ends_at.isoformat(),
                "pass_pool": p.pass_pool,
                "closed_at": p.closed_at.isoformat(),
            }
            for p in rows
        ]
    )


def _period(session: SessionDep, period_id: str) -> ClearingPeriod:
    period = session.scalar(select(ClearingPeriod).where(ClearingPeriod.period_id == period_id))
    if period is None:
        raise NotFound(f"période {period_id} inconnue", f"unknown period {period_id}")
    return period


@router.get(
    "/clearing/{period_id}/statement.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    summary="Relevé CSV / statement as CSV",
)
def statement_as_csv(period_id: str, session: SessionDep, _: Reader) -> Response:
    """The period's settlements as CSV (``;``, euros with a decimal comma, French labels)."""
    period = _period(session, period_id)
    body = statement.statement_csv(period.period_id, service.period_settlements(session, period_id))
    return Response(
        body.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="releve-{period_id}.csv"'},
    )


@router.get(
    "/clearing/{period_id}/statement.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="Relevé PDF / statement as PDF",
)
def statement_as_pdf(period_id: str, session: SessionDep, _: Reader) -> Response:
    """The period's settlements as a PDF statement (French)."""
    period = _period(session, period_id)
    pdf = statement.statement_pdf(
        period.period_id,
        period.starts_at,
        period.ends_at,
        service.period_settlements(session, period_id),
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="releve-{period_id}.pdf"'},
    )
