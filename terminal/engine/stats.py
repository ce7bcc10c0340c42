"""Counting APDUs per transaction (what the benchmark reports and the tests bound)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class APDUCounter:
    """Card and SAM APDUs sent since the last :meth:`reset`.

    One counter is shared by the card channel and the SAM resource of a transaction; the gate
    resets it at each tap. A command re-sent by the reader layer (``6Cxx``, ``61xx``) counts once:
    the engine always asks for ``Le = 00`` so that this does not happen with this card.

    Attributes:
        card: card APDUs.
        sam: SAM APDUs.
        card_commands: names of the card commands, in order (for traces and tests).
        sam_commands: names of the SAM commands, in order.
    """

    card: int = 0
    sam: int = 0
    card_commands: list[str] = field(default_factory=list)
    sam_commands: list[str] = field(default_factory=list)

    def count_card(self, name: str) -> None:
        """One more card APDU."""
        self.card += 1
        self.card_commands.append(name)

    def count_sam(self, name: str) -> None:
        """One more SAM APDU."""
        self.sam += 1
        self.sam_commands.append(name)

    def reset(self) -> None:
        """Start counting a new transaction."""
        self.card = self.sam = 0
        self.card_commands.clear()
        self.sam_commands.clear()
