"""Issuer personalisation in the factory: keys and initial records written straight into an image.

A real card is personalised by the card manufacturer with the issuer's keys before any terminal
sees it; this module is that step for emulated cards (``regioncard card new``) and for tests that
need a populated card. Nothing here goes through APDUs or secure sessions: it is the factory, not a
terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

from card_schema.crypto import KeyRef, KeyRole
from card_schema.errors import SchemaError
from card_schema.layout import CARD_LAYOUT, CardLayout
from card_schema.sample import sample_card
from hardware.card.image import SV_BALANCE_MAX, SV_BALANCE_MIN, CardImage, CardKey
from hardware.sam.keystore import MasterKeyStore


def diversification_input(serial: bytes, aid: bytes) -> bytes:
    """AN10922 input of a card key: card serial || application AID (31 bytes at most)."""
    return (serial + aid)[:31]


def new_card(
    serial: bytes,
    keys: MasterKeyStore | None,
    *,
    layout: CardLayout = CARD_LAYOUT,
    key_version: int = 1,
) -> CardImage:
    """A blank card with, when ``keys`` is given, every application key diversified for it.

    Raises:
        CardImageError: wrong serial size.
        KeyStoreError: a master key is missing.
    """
    image = CardImage.blank(serial, layout)
    if keys is not None:
        for app in layout.applications:
            for role in KeyRole:
                ref = KeyRef(app.name, role, key_version)
                key = keys.diversify(ref, diversification_input(serial, app.aid))
                image.applications[app.name].keys[role] = CardKey(key_version, key)
    return image


def write_records(
    image: CardImage,
    application: str,
    file: str,
    records: Sequence[bytes],
    *,
    layout: CardLayout = CARD_LAYOUT,
) -> None:
    """Write the first ``len(records)`` records of a file (each padded with zeros to record size).

    Raises:
        SchemaError: unknown application or file, too many records, or a record too long.
    """
    f = layout.application(application).file(file)
    if len(records) > f.record_count:
        raise SchemaError(f"{f.record_count} records at most", field=f"{application}.{file}")
    target = image.applications[application].records[file]
    for number, record in enumerate(records):
        if len(record) > f.record_size:
            raise SchemaError("record too long", field=f"{application}.{file}")
        target[number] = record.ljust(f.record_size, b"\x00")


def set_sv_balance(
    image: CardImage, application: str, balance: int, *, layout: CardLayout = CARD_LAYOUT
) -> None:
    """Set the initial stored-value balance (eurocents) of an SV application.

    Raises:
        SchemaError: the application has no purse or the balance is out of range.
    """
    if not layout.application(application).stored_value:
        raise SchemaError("no stored value in this application", field=application)
    if not SV_BALANCE_MIN <= balance <= SV_BALANCE_MAX:
        raise SchemaError("balance out of range", field=f"{application}.sv_balance")
    image.applications[application].sv_balance = balance


SAMPLE_SV_BALANCE = 2290  # eurocents: the balance after the last debit of the sample's SV log


def write_sample_content(image: CardImage, *, layout: CardLayout = CARD_LAYOUT) -> None:
    """Personalise ``image`` with the sample card of :mod:`card_schema.sample` (all four apps).

    What ``regioncard demo`` decodes, on an emulated card a gate or canteen till can use: a
    lycéenne from Amiens with a monthly pass, a carnet, school aid and a mobility-aid right.
    """
    for application, files in sample_card(layout).items():
        for file, records in files.items():
            write_records(image, application, file, records, layout=layout)
    set_sv_balance(image, "wallet", SAMPLE_SV_BALANCE, layout=layout)
