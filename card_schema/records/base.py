"""Record types: a named layout that turns a 29-byte record into a dict and back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from card_schema import en1545
from card_schema.errors import SchemaError
from card_schema.layout import RECORD_SIZE
from card_schema.records.variant import DEFAULT_VARIANT, PlumVariant


@dataclass(frozen=True)
class RecordContext:
    """What a layout may depend on besides the record's own bits.

    Attributes:
        variant: the network's Intercode reading (see :mod:`card_schema.records.variant`).
        tariff: for a contract, the ``BestContractTariff`` of the contract-list entry pointing at
            it; its tariff type selects the contract layout (Intercode; Metrodroid
            ``IntercodeTransitData.createSubscription``).
    """

    variant: PlumVariant = DEFAULT_VARIANT
    tariff: int | None = None


Fields = tuple[en1545.Field, ...]


@dataclass(frozen=True)
class RecordType:
    """A record layout known by name (``"plum.event"``).

    Attributes:
        name: ``<application>.<record>``, as in :data:`card_schema.layout.CARD_LAYOUT`.
        title: French-first label for people.
        layout: the field list for a context (most layouts ignore it).
        size: record size in bytes.
    """

    name: str
    title: str
    layout: Callable[[RecordContext], Fields]
    size: int = RECORD_SIZE

    def fields(self, context: RecordContext | None = None) -> Fields:
        return self.layout(context or RecordContext())

    def rows(self, context: RecordContext | None = None) -> list[en1545.Row]:
        """The layout, field by field (for documentation and ``regioncard schema describe``)."""
        return en1545.describe(self.fields(context))

    def _check_size(self, raw: bytes) -> None:
        if len(raw) != self.size:
            raise SchemaError(f"a {self.name} record is {self.size} bytes, got {len(raw)}")

    def decode(self, raw: bytes, context: RecordContext | None = None) -> dict[str, Any]:
        """Decode one record.

        Raises:
            SchemaError: wrong length, or a field running past the end of the record.
        """
        self._check_size(raw)
        return en1545.decode(self.fields(context), raw, where=f"{self.name}.")

    def encode(self, values: Mapping[str, Any], context: RecordContext | None = None) -> bytes:
        """Encode one record, zero-padded to its size.

        Raises:
            SchemaError: naming the field that is missing, unknown or does not fit.
        """
        return en1545.encode(self.fields(context), values, size=self.size, where=f"{self.name}.")


def fixed(name: str, title: str, fields: Fields, size: int = RECORD_SIZE) -> RecordType:
    """A record type whose layout never varies."""
    en1545.check_layout(fields, f"{name}.")
    return RecordType(name, title, lambda _context: fields, size)
