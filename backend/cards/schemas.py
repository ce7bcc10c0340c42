"""Card bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.actions.schemas import CardActionOut
from backend.auth.roles import Application
from backend.bounds import BodyId
from backend.cards.models import CardStatus

SERIAL = r"^(?:[0-9A-Fa-f]{2}){1,16}$"


class CardIn(BaseModel):
    """A card to issue."""

    model_config = ConfigDict(extra="forbid")

    holder_id: BodyId
    serial: str = Field(pattern=SERIAL)
    applications: list[Application] = Field(min_length=1, max_length=4)


class ApplicationIn(BaseModel):
    """An application to add."""

    model_config = ConfigDict(extra="forbid")

    application: Application


class BlockIn(BaseModel):
    """Why a card is blocked."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=200)


class ReplaceIn(BlockIn):
    """Block a card and issue its replacement."""

    new_serial: str = Field(pattern=SERIAL)


class CardOut(BaseModel):
    """A card as the desk sees it."""

    serial: str
    holder_id: int
    status: CardStatus
    applications: list[Application]
    issued_at: datetime
    blocked_at: datetime | None
    blocked_reason: str | None
    replaced_by: str | None
    balances: dict[str, int]


class ReplacementOut(BaseModel):
    """Outcome of a block-and-replace."""

    old: CardOut
    new: CardOut
    moved: list[CardActionOut]
