"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from backend.auth.roles import AgentRole


class TokenOut(BaseModel):
    """OAuth2 token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds")
    role: AgentRole


class AgentIn(BaseModel):
    """A new agent account."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=10, max_length=200)
    role: AgentRole
    full_name: str = Field(default="", max_length=200)


class AgentOut(BaseModel):
    """An agent account (never its password hash)."""

    model_config = ConfigDict(from_attributes=True)

    username: str
    full_name: str
    role: AgentRole
    active: bool
