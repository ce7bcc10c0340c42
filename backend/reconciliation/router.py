"""``/api/v1/reconciliation``: reports (supervisors, auditors), period close (supervisors)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.bounds import BodyInt, IsoDateTime
from backend.dependencies import SessionDep
from backend.ledger.service import check_balanced
from backend.reconciliation import service

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


@router.get("/anomalies", summary="Anomalies")
def anomalies(
    session: SessionDep,
    _: Reader,
    kind: str | None = None,
    open_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Latest anomalies raised by the validation loop and the upload service."""
    return service.list_anomalies(session, kind=kind, open_only=open_only, limit=limit)


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
