"""The contract every emulated chip (card or SAM) offers to the bridges that expose it.

The vpcd bridge (PC/SC), the nfcpy UDP bridge and the in-process reader all drive an emulated chip
through this protocol only, so a chip never knows which stack it sits behind.
"""

from __future__ import annotations

import logging
from typing import Protocol

from card_schema.errors import RegionCardError

log = logging.getLogger(__name__)


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


def with_tck(atr: bytes) -> bytes:
    """``atr`` (TS onwards) followed by its check byte TCK: the XOR of every byte after TS."""
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    return atr + bytes([tck])


#: Answer to a command when a chip raised instead of answering: execution error, no effect claimed.
SW_EXECUTION_ERROR = b"\x6f\x00"


def answer(chip: EmulatedICC, apdu: bytes, bridge: str) -> bytes:
    """Run ``apdu`` on ``chip`` for a bridge: the chip's answer, whatever happens.

    :class:`ChipPowerLost` goes through (the bridge makes the card leave the field). Any other
    exception breaks the chip's contract; the reader still gets ``6F00`` (and the traceback goes to
    the log) rather than a hung stack.
    """
    try:
        return chip.transmit(apdu)
    except ChipPowerLost:
        raise
    except Exception:
        log.exception("%s: chip raised on %s", bridge, apdu.hex(" ").upper())
        return SW_EXECUTION_ERROR
