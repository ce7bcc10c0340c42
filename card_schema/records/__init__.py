"""Record layouts of the four applications, by record type name.

``RECORD_TYPES`` maps every ``record_type`` named in :data:`card_schema.layout.CARD_LAYOUT`
(``"plum.event"``, ``"cursus.student"``...) to its :class:`RecordType`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from card_schema.errors import SchemaError
from card_schema.records import cursus, employment, plum, wallet
from card_schema.records.base import RecordContext, RecordType
from card_schema.records.variant import (
    DEFAULT_VARIANT,
    NAMED_VARIANTS,
    NETWORK_VARIANTS,
    PASSENGER_CLASS_8BIT,
    PlumVariant,
)

RECORD_TYPES: dict[str, RecordType] = {
    rt.name: rt for module in (plum, wallet, cursus, employment) for rt in module.RECORD_TYPES
}

__all__ = [
    "DEFAULT_VARIANT",
    "NAMED_VARIANTS",
    "NETWORK_VARIANTS",
    "PASSENGER_CLASS_8BIT",
    "RECORD_TYPES",
    "PlumVariant",
    "RecordContext",
    "RecordType",
    "decode_record",
    "encode_record",
    "record_type",
]


def record_type(name: str) -> RecordType:
    """The record type called ``name``.

    Raises:
        SchemaError: no such record type.
    """
    try:
        return RECORD_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(RECORD_TYPES))
        raise SchemaError(f"unknown record type {name!r} (known: {known})") from None


def _context(variant: PlumVariant | None, tariff: int | None) -> RecordContext | None:
    if variant is None and tariff is None:
        return None
    return RecordContext(variant=variant or DEFAULT_VARIANT, tariff=tariff)


def decode_record(
    type_name: str, raw: bytes, *, variant: PlumVariant | None = None, tariff: int | None = None
) -> dict[str, Any]:
    """Decode one 29-byte record of type ``type_name`` into a JSON-friendly dict.

    Args:
        type_name: e.g. ``"plum.contract"``.
        raw: the record as read from the card.
        variant: the network's Intercode reading; by default the environment record picks it from
            its own network id and the other records use the majority reading.
        tariff: for ``plum.contract``, the ``BestContractTariff`` pointing at it (layout choice).

    Raises:
        SchemaError: unknown type, wrong length, or a field running past the end of the record.
    """
    return record_type(type_name).decode(raw, _context(variant, tariff))


def encode_record(
    type_name: str,
    values: Mapping[str, Any],
    *,
    variant: PlumVariant | None = None,
    tariff: int | None = None,
) -> bytes:
    """Encode a dict into one 29-byte record of type ``type_name`` (see :func:`decode_record`).

    Raises:
        SchemaError: naming the field that is missing, unknown, or does not fit.
    """
    return record_type(type_name).encode(values, _context(variant, tariff))
