"""Product catalogue and sale bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from backend.actions.schemas import CardActionOut
from backend.auth.roles import Application


class ProductIn(BaseModel):
    """A catalogue entry (GTFS-Fares v2 ``fare_products.txt`` fields plus the card code)."""

    model_config = ConfigDict(extra="forbid")

    code: StrictInt = Field(
        ge=0, le=0xFFFF, description="Intercode ContractTariff / catalogue code"
    )
    fare_product_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    application: Application
    rider_category_id: str | None = Field(default=None, max_length=64)
    fare_media_id: str = Field(default="carte_regionale", max_length=64)
    amount_cents: StrictInt = Field(
        ge=0, le=1_000_000, description="price in eurocents, never below zero"
    )
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    duration_days: StrictInt | None = Field(default=None, ge=1, le=3660)
    trips: StrictInt | None = Field(default=None, ge=1, le=1000)


class ProductOut(ProductIn):
    """A catalogue entry."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    active: bool


class LoadIn(BaseModel):
    """A product sold for a card (a season ticket, a trip pack, a wallet reload)."""

    model_config = ConfigDict(extra="forbid")

    card_serial: str = Field(pattern=r"^(?:[0-9A-Fa-f]{2}){1,16}$")
    product_code: StrictInt = Field(ge=0, le=0xFFFF)
    amount_cents: StrictInt | None = Field(
        default=None, ge=1, le=100_000, description="wallet reloads: the amount chosen"
    )


class SaleOut(BaseModel):
    """A recorded sale and the action that will write it on the card."""

    id: int
    card_serial: str
    product_code: int
    amount_cents: int
    channel: str
    sold_by: str
    sold_at: datetime
    action: CardActionOut


class PriceIn(BaseModel):
    """A new price for a catalogue entry."""

    model_config = ConfigDict(extra="forbid")

    amount_cents: int = Field(ge=0, le=1_000_000, description="eurocents, never below zero")


class PriceChangeOut(BaseModel):
    """One event of a product's price history (from the audit trail)."""

    at: datetime
    by: str
    action: str
    detail: str
