"""Errors of the upload wire format shared by terminals and backend (``docs/batch-format.md``)."""

from __future__ import annotations

from card_schema.errors import SchemaError, VerificationError


class RecordError(SchemaError):
    """A transaction record or intent cannot be built as asked (bad terminal id, float amount)."""


class BatchFormatError(RecordError):
    """An upload batch or an acknowledgement does not follow ``docs/batch-format.md``."""


class BatchSignatureError(VerificationError):
    """The Ed25519 signature of an upload batch does not verify under the terminal's key."""
