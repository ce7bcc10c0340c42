"""Deny-list bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SignedEnvelopeOut(BaseModel):
    """A signed table as terminals receive it (terminal/fares/signed.py)."""

    kind: str
    version: int
    issued_at: str
    payload: dict[str, Any]
    signature: str = Field(description="base64 Ed25519 signature of the canonical bytes")


class DenyListEntryOut(BaseModel):
    """A serial on the deny-list."""

    model_config = ConfigDict(from_attributes=True)

    card_serial: str
    reason: str
    added_version: int
    added_at: datetime


class PublicKeyOut(BaseModel):
    """The table-signing public key terminals are installed with."""

    algorithm: str = "Ed25519"
    public_key: str = Field(description="raw 32-byte key, hex")


class VersionOut(BaseModel):
    """A published version number."""

    version: int
