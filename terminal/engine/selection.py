"""Card selection scenarios: which card and application to accept, with reads piggy-backed.

Keyple's ``CardSelectionManager``: a scenario is a list of :class:`CardSelection` tried in order;
each filters on the ATR (regular expression over the upper-case hex ATR) and on the DF name, and
names files to read right after the selection, in the same card exchange on a reader that batches
APDUs (one Read Records APDU per file here).

Example::

    selection = CardSelection("plum", reads=("environment", "events", "contract_list",
                                             "contracts"))
    card = select_card(reader, [selection, CardSelection("plum", df_name=b"3MTR.ICA")])
    card.application("plum").file_records("events")      # newest first
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from card_schema.layout import CARD_LAYOUT, CardLayout
from firmware_host.readers.base import Reader
from terminal.engine.errors import SelectionError
from terminal.engine.image import CalypsoCard
from terminal.engine.stats import APDUCounter
from terminal.engine.transaction import CardTransactionManager

REGIONAL_CARD_ATR = r"3B8F8001805A.{20}829000.."
"""ATR filter of a Calypso card as a contactless reader presents it: historical bytes ``80 5A`` ||
startup information (6) || low 4 bytes of the serial || ``82 90 00``, then TCK."""


@dataclass(frozen=True)
class CardSelection:
    """One way to select the card.

    Attributes:
        application: application name in the layout (``"plum"``).
        df_name: DF name to select with; ``None`` for the application's canonical one.
        atr_pattern: regular expression the upper-case hex ATR must match in full, or ``None``.
        reads: files of the application read right after the selection (whole files).
        accept_invalidated: also accept an invalidated application (``6283``); a gate does, to
            show "Carte invalidée" instead of ignoring the card.
    """

    application: str
    df_name: bytes | None = None
    atr_pattern: str | None = None
    reads: tuple[str, ...] = ()
    accept_invalidated: bool = True

    def matches_atr(self, atr: bytes) -> bool:
        """Whether ``atr`` passes the ATR filter."""
        if self.atr_pattern is None:
            return True
        return re.fullmatch(self.atr_pattern, atr.hex().upper()) is not None


def select_card(
    reader: Reader,
    scenario: CardSelection | Sequence[CardSelection],
    *,
    counter: APDUCounter | None = None,
    layout: CardLayout = CARD_LAYOUT,
    card: CalypsoCard | None = None,
) -> CalypsoCard:
    """Run a selection scenario on the card in ``reader``; the first selection that matches wins.

    Connects the reader if it is not connected. With ``card``, continues on an image already
    started (applications read before, e.g. a free read of another application first).

    Returns:
        The card image with the selected application current and the piggy-backed reads done.

    Raises:
        SelectionError: no selection matched (ATR filtered out, application absent or
            invalidated when not accepted).
        CardError, CommunicationError: as :class:`CardTransactionManager`.
    """
    selections = [scenario] if isinstance(scenario, CardSelection) else list(scenario)
    atr = reader.atr if reader.connected else reader.connect()
    if card is None:
        card = CalypsoCard(atr=atr, layout=layout)
    manager = CardTransactionManager(reader, card, counter=counter)
    for selection in selections:
        if not selection.matches_atr(atr):
            continue
        app = manager.process_select_application(
            selection.application, df_name=selection.df_name, reads=selection.reads
        )
        if app is None or (app.invalidated and not selection.accept_invalidated):
            continue
        return card
    raise SelectionError("no application of the selection scenario on this card")
