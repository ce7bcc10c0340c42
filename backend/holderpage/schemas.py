"""Request and answer bodies of the holder's page API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.bounds import BodyId

SERIAL = r"^(?:[0-9A-Fa-f]{2}){1,16}$"
TEXT = r"^[^\x00-\x1f]*$"  # no control characters (PostgreSQL refuses NUL in text)
LOGIN = r"^[^\s@\x00-\x1f]+@[^\s@\x00-\x1f]+\.[^\s@\x00-\x1f]+$"


class ActivationCodeIn(BaseModel):
    """A desk agent asks for a holder's one-time activation code."""

    model_config = ConfigDict(extra="forbid")

    holder_id: BodyId
    reason: str = Field(min_length=3, max_length=200, pattern=TEXT)


class ActivationCodeOut(BaseModel):
    """The code, shown once to the agent who hands it to the holder."""

    holder_id: int
    code: str
    expires_at: datetime


class GuardianIn(BaseModel):
    """A desk agent records a minor's legal guardian."""

    model_config = ConfigDict(extra="forbid")

    guardian_holder_id: BodyId
    ward_holder_id: BodyId
    reason: str = Field(min_length=3, max_length=200, pattern=TEXT)


class GuardianOut(BaseModel):
    """A recorded guardian link."""

    guardian_holder_id: int
    ward_holder_id: int
    granted_at: datetime


class ActivateIn(BaseModel):
    """The holder opens their page with the code from the desk."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=4, max_length=40, pattern=TEXT)
    login: str = Field(min_length=3, max_length=200, pattern=LOGIN)
    password: str = Field(min_length=1, max_length=200)


class LoginIn(BaseModel):
    """Sign-in with login and password."""

    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=200, pattern=TEXT)
    password: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    """A holder session token (send it as ``Authorization: Bearer``)."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class BlockIn(BaseModel):
    """Blocking asks for an explicit confirmation."""

    model_config = ConfigDict(extra="forbid")

    confirm: bool


class PurchaseIn(BaseModel):
    """Buy a product for one of the holder's cards."""

    model_config = ConfigDict(extra="forbid")

    card_serial: str = Field(pattern=SERIAL)
    product_code: int = Field(ge=0, le=2**31 - 1)
    amount_cents: int | None = Field(default=None, ge=0, le=1_000_000)
    payment_means: str = Field(min_length=1, max_length=64)


class PurchaseOut(BaseModel):
    """A paid sale, waiting for the card's next tap."""

    payment_reference: str
    provider: str
    amount_cents: int
    action_id: int
    action_status: str
    message: str


class TripHistoryIn(BaseModel):
    """Keep one's own trip history, or not."""

    model_config = ConfigDict(extra="forbid")

    keep: bool


class ConfigOut(BaseModel):
    """What the page needs before sign-in."""

    oidc_enabled: bool
    oidc_label: str
    payment_provider: str
