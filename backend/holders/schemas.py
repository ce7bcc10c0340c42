"""Holder bodies."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HolderIn(BaseModel):
    """A new holder; ``anonymous`` holders carry no personal data at all."""

    model_config = ConfigDict(extra="forbid")

    anonymous: bool = False
    family_name: str | None = Field(default=None, min_length=1, max_length=100)
    given_name: str | None = Field(default=None, min_length=1, max_length=100)
    birth_date: date | None = None
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9 .-]{6,31}$")
    postal_address: str | None = Field(default=None, max_length=400)

    @model_validator(mode="after")
    def _anonymous_has_nothing(self) -> HolderIn:
        personal = (
            self.family_name,
            self.given_name,
            self.birth_date,
            self.email,
            self.phone,
            self.postal_address,
        )
        if self.anonymous and any(v is not None for v in personal):
            raise ValueError(
                "un titulaire anonyme ne porte aucune donnée personnelle"
                " / an anonymous holder carries no personal data"
            )
        if not self.anonymous and (self.family_name is None or self.given_name is None):
            raise ValueError(
                "nom et prénom obligatoires (ou carte anonyme)"
                " / family_name and given_name are required (or anonymous: true)"
            )
        return self


class HolderSummary(BaseModel):
    """A holder named in a duplicate warning (names and birth date only)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    family_name: str | None
    given_name: str | None
    birth_date: date | None


class HolderUpdate(BaseModel):
    """Details an agent may correct (only the fields sent change)."""

    model_config = ConfigDict(extra="forbid")

    family_name: str | None = Field(default=None, min_length=1, max_length=100)
    given_name: str | None = Field(default=None, min_length=1, max_length=100)
    birth_date: date | None = None

    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9 .-]{6,31}$")
    postal_address: str | None = Field(default=None, max_length=400)


class HolderOut(BaseModel):
    """A holder as the desk sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    anonymous: bool
    family_name: str | None
    given_name: str | None
    birth_date: date | None
    email: str | None
    phone: str | None
    postal_address: str | None
    created_at: datetime


class HolderCreatedOut(HolderOut):
    """A holder just created, with the holders that are probably the same person (same names and
    birth date): the page warns the agent."""

    possible_duplicates: list[HolderSummary] = Field(default_factory=list)
