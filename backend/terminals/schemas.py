"""Request and response bodies of the terminal registry."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from backend.auth.roles import TerminalKind

HEX = r"^(?:[0-9A-Fa-f]{2})+$"


class TerminalIn(BaseModel):
    """A device to register."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    kind: TerminalKind
    label: str = Field(default="", max_length=200)
    station_id: StrictInt | None = Field(default=None, ge=0, le=2**31 - 1)
    school_uai: str | None = Field(default=None, pattern=r"^[0-9]{7}[A-Z]$")
    sam_serial: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{8}$")
    public_key: str | None = Field(
        default=None, pattern=r"^[0-9A-Fa-f]{64}$", description="raw Ed25519 public key, hex"
    )


class TerminalKeyIn(BaseModel):
    """One more public key for a terminal."""

    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(pattern=r"^[0-9A-Fa-f]{64}$", description="raw Ed25519 key, hex")


class TerminalKeyOut(BaseModel):
    """A registered public key."""

    key_id: str
    public_key: str
    created_at: datetime
    revoked_at: datetime | None


class TerminalOut(BaseModel):
    """A registered device (never its credential)."""

    terminal_id: str
    kind: TerminalKind
    label: str
    station_id: int | None
    school_uai: str | None
    sam_serial: str | None
    active: bool
    keys: list[TerminalKeyOut]


class TerminalRegistered(TerminalOut):
    """Answer to a registration: the bearer credential, shown this once."""

    credential: str


class CredentialOut(BaseModel):
    """A new bearer credential, shown this once."""

    terminal_id: str
    credential: str
