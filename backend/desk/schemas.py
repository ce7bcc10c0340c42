"""Desk job bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from backend.auth.roles import Application
from backend.bounds import BodyId
from backend.desk.models import JobKind, JobStatus
from backend.entitlements.models import AidPurpose


class AidIn(BaseModel):
    """School aid granted at the desk (ring-fenced purse of the Cursus application)."""

    model_config = ConfigDict(extra="forbid")

    purpose: AidPurpose
    amount_cents: StrictInt = Field(gt=0, le=100_000)
    funder: str = Field(default="region", min_length=2, max_length=64)
    school_year: str = Field(pattern=r"^\d{4}-\d{4}$", examples=["2025-2026"])


class StudentIn(BaseModel):
    """The Cursus student record chosen at the desk."""

    model_config = ConfigDict(extra="forbid")

    school_uai: str | None = Field(default=None, pattern=r"^\d{7}[A-Z]$")
    level: str | None = Field(default=None, max_length=24)
    boarding: str | None = Field(default=None, max_length=24)
    school_transport: bool = Field(default=False, description="free school transport granted")
    transport_zones: list[StrictInt] = Field(default_factory=list, max_length=8)


# A catalogue code: the card's 16-bit ContractTariff, as ProductIn.code (a larger number
# overflowed PostgreSQL's integer in the product lookup: a 500).
ProductCode = Annotated[StrictInt, Field(ge=0, le=0xFFFF)]


class ContractIn(BaseModel):
    """A contract with its options (the page sends the bare product code instead)."""

    model_config = ConfigDict(extra="forbid")

    code: ProductCode
    zones: list[StrictInt] = Field(
        default_factory=list, max_length=8, description="empty: every zone"
    )
    bike_shelter: bool = Field(default=False, description="the bike-shelter option")


class ProfileIn(BaseModel):
    """A reduced-fare holder profile checked at the desk (PLUM environment ``HolderProfiles``)."""

    model_config = ConfigDict(extra="forbid")

    number: StrictInt = Field(
        ge=1, le=255, description="1 pupil, 2 under 26, 3 job seeker, 4 senior"
    )
    valid_until: date


class JobIn(BaseModel):
    """What an agent asks a desk station to write.

    ``issue``: a blank card for ``holder_id`` (or ``anonymous``) with ``applications``;
    ``update``: ``card_serial`` gets ``add_applications`` / loses ``remove_applications``, and
    loads; ``replace``: the blocked or lost ``card_serial`` is replaced by a blank card (its
    balances and contracts move), with ``reason``. ``contracts`` are product codes, or objects
    with options (zones, bike shelter); ``profiles`` and ``valid_from`` are optional.
    """

    model_config = ConfigDict(extra="forbid")

    kind: JobKind = JobKind.ISSUE
    desk_terminal_id: str = Field(min_length=1, max_length=64)
    holder_id: BodyId | None = None
    anonymous: bool = False
    card_serial: str | None = Field(default=None, pattern=r"^(?:[0-9A-Fa-f]{2}){1,16}$")
    applications: list[Application] = Field(default_factory=list, max_length=4)
    add_applications: list[Application] = Field(default_factory=list, max_length=4)
    remove_applications: list[Application] = Field(default_factory=list, max_length=4)
    contracts: list[ProductCode | ContractIn] = Field(default_factory=list, max_length=4)
    wallet_reload_cents: StrictInt = Field(default=0, ge=0, le=15_000)
    school_aid: list[AidIn] = Field(default_factory=list, max_length=3)
    student: StudentIn = Field(default_factory=StudentIn)
    profiles: list[ProfileIn] = Field(default_factory=list, max_length=3)
    valid_from: date | None = Field(
        default=None, description="first day of the contracts and school year (default: today)"
    )
    reason: str | None = Field(default=None, max_length=200)


class JobOut(BaseModel):
    """A job as the desk page follows it."""

    id: int
    kind: JobKind
    status: JobStatus
    desk_terminal_id: str
    holder_id: int
    card_serial: str | None
    replaces_serial: str | None
    message: str
    steps_done: int
    steps_total: int
    current_step: str | None
    summary: dict[str, Any]
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    receipt_url: str | None


class StationJobOut(BaseModel):
    """A job as the desk station takes it (``terminal.desk.plan.DeskJob``)."""

    id: int
    kind: JobKind
    status: JobStatus
    card_serial: str | None
    steps_done: list[str]
    plan: dict[str, Any] | None
    request: dict[str, Any]
    message: str


class CardAttachIn(BaseModel):
    """The card on the desk reader: its serial and what it holds (free reading)."""

    model_config = ConfigDict(extra="forbid")

    card_serial: str = Field(pattern=r"^(?:[0-9A-Fa-f]{2}){8}$")
    snapshot: dict[str, Any] = Field(default_factory=dict)


class ProgressIn(BaseModel):
    """What the station reports."""

    model_config = ConfigDict(extra="forbid")

    step_id: str | None = Field(default=None, max_length=64)
    card_tx_counter: StrictInt | None = Field(default=None, ge=0, le=0xFFFFFF)
    status: JobStatus | None = None
    message: str | None = Field(default=None, max_length=300)
    current: str | None = Field(default=None, max_length=64)
