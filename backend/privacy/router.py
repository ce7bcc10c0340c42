"""``/api/v1/privacy``: the 48-hour link purge (cron) and the k-anonymous open-data export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.bounds import IsoDate
from backend.columns import utcnow
from backend.dependencies import KeysDep, SessionDep, SettingsDep
from backend.privacy import service
from backend.privacy.schemas import OpenDataCellOut, OpenDataOut, PurgeOut

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


@router.post("/purge", response_model=PurgeOut)
def purge(
    session: SessionDep,
    keys: KeysDep,
    settings: SettingsDep,
    _: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))],
) -> PurgeOut:
    """Delete card links and processed batch bytes older than the retention (48 h) and retire
    old pseudonym keys."""
    now = utcnow()
    return PurgeOut(
        card_links_deleted=service.purge_card_links(session, now, settings.card_link_retention),
        batch_bodies_deleted=service.purge_batch_bodies(session, now, settings.card_link_retention),
        pseudonym_keys_destroyed=keys.retire_pseudonym_keys(now - settings.card_link_retention),
    )


@router.get("/open-data", response_model=OpenDataOut)
def open_data(
    day: IsoDate,
    session: SessionDep,
    settings: SettingsDep,
    _: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))],
) -> OpenDataOut:
    """Taps of one day by station and hour; cells under k distinct cards suppressed (k >= 10)."""
    cells, suppressed = service.open_data_export(session, day, settings.k_anonymity)
    return OpenDataOut(
        day=day,
        k=settings.k_anonymity,
        cells=[OpenDataCellOut(**vars(c)) for c in cells],
        suppressed_cells=suppressed,
    )
