"""Error family of the card schema layer, and the root of every error the project raises on purpose.

Each layer has its own family (``SchemaError`` here, ``ReaderError``/``CardError`` in
firmware_host, terminal and backend errors in their packages), all deriving from
:class:`RegionCardError`, so the CLI can show any of them as a clean message instead of a traceback.
"""

from __future__ import annotations


class RegionCardError(Exception):
    """Root of the project's deliberate errors. ``str(err)`` is a message a person can act on."""


class SchemaError(RegionCardError):
    """A record or value does not fit the card schema.

    Attributes:
        field: dotted name of the field concerned (``"contract.ContractTariff"``), or ``None``
            when the error is about a whole record (wrong length) or an unknown record type.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class VerificationError(RegionCardError):
    """A MAC, signature or cryptogram did not verify. Raised, never returned as ``False``."""
