"""Action list bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from backend.actions.models import ActionKind, ActionStatus
from backend.auth.roles import Application


class CardActionOut(BaseModel):
    """A pending or past card action."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    card_serial: str
    application: Application
    kind: ActionKind
    params: dict[str, Any]
    status: ActionStatus
    created_at: datetime
    created_by: str
    confirmed_at: datetime | None
    confirmed_card_tx_counter: int | None

    @field_validator("params", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        import json

        return json.loads(value) if isinstance(value, str) else value


class ConfirmIn(BaseModel):
    """A terminal reports that it wrote an action."""

    model_config = ConfigDict(extra="forbid")

    card_serial: str = Field(pattern=r"^[0-9A-Fa-f]{2,32}$")
    card_tx_counter: StrictInt = Field(ge=0, le=2**24)
