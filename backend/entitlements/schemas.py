"""Entitlement bodies."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from backend.actions.schemas import CardActionOut
from backend.bounds import BodyId
from backend.entitlements.models import AidPurpose


class SchoolAidIn(BaseModel):
    """Aid for one school year, one purpose, from one funder."""

    model_config = ConfigDict(extra="forbid")

    holder_id: BodyId
    school_year: str = Field(pattern=r"^\d{4}-\d{4}$")
    purpose: AidPurpose
    funder: str = Field(min_length=1, max_length=64)
    amount_cents: StrictInt = Field(ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _consecutive_years(self) -> SchoolAidIn:
        first, second = (int(y) for y in self.school_year.split("-"))
        if second != first + 1:
            raise ValueError(
                "année scolaire : deux années consécutives, par ex. 2025-2026"
                " / school_year is two consecutive years, e.g. 2025-2026"
            )
        return self


class SchoolAidOut(BaseModel):
    """A granted aid and the writes queued for the holder's cards."""

    id: int
    holder_id: int
    school_year: str
    purpose: AidPurpose
    funder: str
    amount_cents: int
    granted_at: datetime
    granted_by: str
    actions: list[CardActionOut]


class EmploymentRightIn(BaseModel):
    """A right granted by an employment partner."""

    model_config = ConfigDict(extra="forbid")

    holder_id: BodyId
    partner: str = Field(min_length=1, max_length=64)
    right_code: StrictInt = Field(ge=0, le=0xFFFF)
    valid_from: date
    valid_to: date
    amount_cents: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    hours: StrictInt | None = Field(default=None, ge=0, le=10_000)

    @model_validator(mode="after")
    def _ordered(self) -> EmploymentRightIn:
        if self.valid_to < self.valid_from:
            raise ValueError("fin de validité avant le début / valid_to is before valid_from")
        return self


class EmploymentRightOut(BaseModel):
    """A granted right and the writes queued for the holder's cards."""

    id: int
    holder_id: int
    partner: str
    right_code: int
    valid_from: date
    valid_to: date
    amount_cents: int | None
    hours: int | None
    status: str
    actions: list[CardActionOut]
