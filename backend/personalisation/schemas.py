"""Personalisation bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.auth.roles import Application


class InitialRecordIn(BaseModel):
    """A record to encode (fields as card_schema.records names them)."""

    model_config = ConfigDict(extra="forbid")

    record_type: str = Field(min_length=1, max_length=64, examples=["cursus.student"])
    values: dict[str, Any]


class PersonalisationIn(BaseModel):
    """What a desk station asks for one blank card."""

    model_config = ConfigDict(extra="forbid")

    card_serial: str = Field(pattern=r"^(?:[0-9A-Fa-f]{2}){1,16}$")
    applications: list[Application] = Field(min_length=1, max_length=4)
    records: list[InitialRecordIn] = Field(default_factory=list, max_length=32)


class WrappedKeyOut(BaseModel):
    """A card key wrapped under the desk transport key (RFC 3394)."""

    application: str
    role: str
    kif: int
    version: int
    wrapped_key: str = Field(description="hex, 24 bytes")


class EncodedRecordOut(BaseModel):
    """An encoded initial record."""

    record_type: str
    data: str = Field(description="hex")


class PersonalisationOut(BaseModel):
    """Keys (wrapped) and records for one card."""

    card_serial: str
    transport_key: str
    wrap_algorithm: str = "AES-KW (RFC 3394)"
    keys: list[WrappedKeyOut]
    records: list[EncodedRecordOut]
