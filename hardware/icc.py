"""The contract every emulated chip (card or SAM) offers to the bridges that expose it.

The vpcd bridge (PC/SC), the nfcpy UDP bridge and the in-process reader all drive an emulated chip
through this protocol only, so a chip never knows which stack it sits behind.
"""

from __future__ import annotations

from typing import Protocol

from card_schema.errors import RegionCardError


class ChipPowerLost(RegionCardError):
    """The chip lost power during a command (fault injection): no response comes back.

    The command may have run. Every bridge reports this as the card leaving the field in the
    middle of the exchange, which is what a real reader sees when the power is cut.
    """


class EmulatedICC(Protocol):
    """An integrated-circuit card as a bridge sees it.

    ``transmit`` never raises on bad input: a malformed APDU gets an ISO 7816-4 status word. The
    one exception it may raise is :class:`ChipPowerLost`, when a fault hook cut the power.
    ``power_off`` is what happens when the card leaves the field or the power is cut: any secure
    session in progress is abandoned, so its modifications are cancelled (anti-tearing).
    """

    def power_on(self) -> bytes:
        """Power the chip (card enters the field) and return its ATR."""
        ...

    def power_off(self) -> None:
        """Remove power (card leaves the field)."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU and return the response data followed by SW1 SW2."""
        ...
