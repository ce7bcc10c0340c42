"""The inspector's reader: read every application in plain and explain; never a session, no SAM."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from firmware_host.readers.base import Reader
from terminal.cardimage import fare_card_image
from terminal.engine import CalypsoCard, CardTransactionManager, select_card
from terminal.engine.stats import APDUCounter
from terminal.fares import InspectionReport, inspect
from terminal.fares.model import Place
from terminal.fares.signed import PushedTables
from terminal.gate.validator import PLUM_SELECTION, read_rest_for_inspection


def read_for_inspection(reader: Reader, counter: APDUCounter | None = None) -> CalypsoCard:
    """Read PLUM (with its counters), Cursus, employment rights and the wallet balance.

    Only selections, Read Records and SV Get (free reads): the card is never modified.
    """
    counter = counter or APDUCounter()
    card = select_card(reader, PLUM_SELECTION, counter=counter)
    manager = CardTransactionManager(reader, card, counter=counter)
    read_rest_for_inspection(manager)
    return card


def inspect_card(
    reader: Reader,
    tables: PushedTables,
    place: Place | None = None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> InspectionReport:
    """Read the card in ``reader`` and explain it (:func:`terminal.fares.inspect`)."""
    now = clock()
    try:
        card = read_for_inspection(reader)
    finally:
        reader.disconnect()
    tariff = tables.tariff_at(now)
    return inspect(fare_card_image(card, tariff), now, tariff, place, deny_list=tables.deny_list)
