"""Error family of the fare layer: tariff tables, deny-lists and the tables pushed by the backend.

Every class derives from :class:`card_schema.errors.RegionCardError`, so the CLI shows any of them
as a clean message. The errors about pushed tables carry the message in French (for the agent at
the station) and in English (for the operations log); ``str(err)`` gives both.

Design rule (London Oyster, 2008: a corrupt table pushed to the readers opened every gate): a pushed
table that is refused for any reason raises one of these errors, and the caller keeps the table it
already had. Nothing in this package ever falls back to "no table" or "accept all".
"""

from __future__ import annotations

from card_schema.errors import RegionCardError, VerificationError


class FareError(RegionCardError):
    """Root of the fare layer's deliberate errors."""


class FareModelError(FareError, ValueError):
    """A terminal card image, place or tap is not well formed (e.g. a negative counter)."""


class TariffError(FareError):
    """A tariff table does not validate (unknown product in a rule, bad percentage, bad JSON)."""


class PushedTableError(FareError):
    """A signed table pushed by the backend was refused; the previous table stays in force.

    Attributes:
        message_fr: what happened, in French.
        message_en: what happened, in English.
        kind: the envelope kind concerned (``"tariff"``, ``"deny_list"``...), if known.
        version: the envelope version concerned, if known.
    """

    def __init__(
        self,
        message_fr: str,
        message_en: str,
        *,
        kind: str | None = None,
        version: int | None = None,
    ) -> None:
        self.message_fr = message_fr
        self.message_en = message_en
        self.kind = kind
        self.version = version
        where = f"{kind} v{version}: " if kind is not None and version is not None else ""
        super().__init__(f"{where}{message_fr} / {message_en}")


class SignatureRefused(PushedTableError, VerificationError):
    """The Ed25519 signature of the envelope does not verify (or is missing or malformed)."""


class WrongKindRefused(PushedTableError):
    """The envelope holds another kind of table than the one expected."""


class RollbackRefused(PushedTableError):
    """The envelope's version is not newer than the table in force (replay or rollback)."""


class TableAgeRefused(PushedTableError):
    """The envelope was issued too long ago (stale) or too far in the future (bad clock)."""


class DeltaChainRefused(PushedTableError):
    """A deny-list delta does not apply to the list in force (version N-1 -> N chain broken)."""


class MalformedTableRefused(PushedTableError):
    """The signed payload is not a valid table of its kind."""
