"""``/api/v1/partners`` and ``/api/v1/shops``: partner readers and shop tills in the back office.

Supervisors register them; supervisors and auditors read a till's daily report and the clearing
owed to each merchant per aid purpose.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.dependencies import SessionDep
from backend.pagination import PageDep
from backend.partners import service

router = APIRouter(prefix="/api/v1", tags=["partners", "shops"])

Supervisor = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Reader = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))]

TERMINAL_ID = r"^[A-Za-z0-9._-]{1,64}$"
SAM = r"^[0-9A-Fa-f]{8}$"
KEY = r"^[0-9A-Fa-f]{64}$"


class PartnerTerminalIn(BaseModel):
    """An employment partner's reader to register."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: str = Field(pattern=TERMINAL_ID)
    partner: str = Field(min_length=1, max_length=32, description="PARTNERS name")
    site: int = Field(ge=0, le=65535)
    label: str = Field(default="", max_length=200)
    sam_serial: str | None = Field(default=None, pattern=SAM)
    public_key: str | None = Field(default=None, pattern=KEY)


class ShopTerminalIn(BaseModel):
    """A shop till to register, with the aid purposes it may take."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: str = Field(pattern=TERMINAL_ID)
    shop_name: str = Field(min_length=1, max_length=200)
    purposes: list[Literal["books", "sport", "leisure"]] = Field(min_length=1)
    sam_serial: str | None = Field(default=None, pattern=SAM)
    public_key: str | None = Field(default=None, pattern=KEY)


class Registered(BaseModel):
    """The registered device and its bearer credential, shown this once."""

    terminal_id: str
    kind: str
    credential: str


def _bytes(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


@router.post("/partners/terminals", response_model=Registered, status_code=status.HTTP_201_CREATED)
def register_partner(body: PartnerTerminalIn, session: SessionDep, _: Supervisor) -> Registered:
    """Register a partner agency's reader (kind ``partner``)."""
    registered = service.register_partner_terminal(
        session,
        terminal_id=body.terminal_id,
        partner=body.partner,
        site=body.site,
        label=body.label,
        sam_serial=_bytes(body.sam_serial),
        public_key=_bytes(body.public_key),
    )
    return Registered(
        terminal_id=body.terminal_id, kind="partner", credential=registered.credential
    )


@router.post("/shops/terminals", response_model=Registered, status_code=status.HTTP_201_CREATED)
def register_shop(body: ShopTerminalIn, session: SessionDep, _: Supervisor) -> Registered:
    """Register a shop till (kind ``shop``) with its purposes."""
    registered = service.register_shop_terminal(
        session,
        terminal_id=body.terminal_id,
        shop_name=body.shop_name,
        purposes=frozenset(body.purposes),
        sam_serial=_bytes(body.sam_serial),
        public_key=_bytes(body.public_key),
    )
    return Registered(terminal_id=body.terminal_id, kind="shop", credential=registered.credential)


@router.get("/shops/clearing")
def clearing(session: SessionDep, _: Reader, page: PageDep) -> list[dict[str, Any]]:
    """What each merchant is owed by the funder of each aid purpose (ledger balances)."""
    return page.of(service.shop_clearing(session))


@router.get("/shops/{terminal_id}/report")
def daily_report(terminal_id: str, day: date, session: SessionDep, _: Reader) -> dict[str, Any]:
    """One till's day: sales, refunds and net per purpose, and records refused."""
    return service.shop_daily_report(session, terminal_id, day)
