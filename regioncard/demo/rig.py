"""The demo's readers: one private pcscd, two vpcd slots, and chips swapped behind them.

Every APDU of the demo goes through the real stack: pyscard -> pcscd -> vpcd -> the bridge ->
the emulated chip. What is *not* real is the arrival of a card in the field: pcscd notices an
insertion or a removal only at its next poll of vpcd (a few hundred milliseconds), which would
make a day of several hundred taps take minutes. So each slot holds a :class:`ChipMultiplexer`:
the bridge stays connected (pcscd sees one card, always present) and the demo *presents* a card
by switching the multiplexer to it, which powers the previous chip off (its open session is
abandoned, as when a card leaves the field) and the new one on. The terminals connect and
disconnect through PC/SC at each tap exactly as with a real reader.

The SAM slot works the same way: each terminal has its own emulated SAM (its own serial, the
one registered with the backend), switched in before the terminal handles a card.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.icc import EmulatedICC
from hardware.pcsc_stack import PCSCStack

log = logging.getLogger(__name__)


class _NoChip:
    """What the slot holds before any card is presented: answers nothing useful."""

    ATR = bytes.fromhex("3B00")

    def power_on(self) -> bytes:
        return self.ATR

    def power_off(self) -> None:
        return None

    def transmit(self, apdu: bytes) -> bytes:
        return b"\x6a\x82"


class ChipMultiplexer:
    """An :class:`~hardware.icc.EmulatedICC` that forwards to whichever chip is presented.

    Args:
        name: label for the logs.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._current: EmulatedICC = _NoChip()
        self._atr = b""
        self.switches = 0

    @property
    def current(self) -> EmulatedICC:
        """The chip in the field now."""
        return self._current

    def present(self, chip: EmulatedICC) -> None:
        """Take the chip in the field out (power off) and put ``chip`` in (power on)."""
        with self._lock:
            if chip is self._current:
                return
            self._current.power_off()
            self._current = chip
            self._atr = chip.power_on()
            self.switches += 1

    def power_on(self) -> bytes:
        """vpcd powers the slot: power the chip in the field."""
        with self._lock:
            self._atr = self._current.power_on()
            return self._atr

    def power_off(self) -> None:
        """vpcd powers the slot off."""
        with self._lock:
            self._current.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        """One APDU to the chip in the field."""
        with self._lock:
            return self._current.transmit(apdu)


@dataclass
class ReaderRig:
    """pcscd, the two bridges and the two PC/SC readers every terminal of the demo uses.

    Attributes:
        stack: the private pcscd.
        cards: the card slot's multiplexer.
        sams: the SAM slot's multiplexer.
        reader: PC/SC reader of the card slot.
        sam_reader: PC/SC reader of the SAM slot.
    """

    stack: PCSCStack
    cards: ChipMultiplexer
    sams: ChipMultiplexer
    reader: PCSCReader
    sam_reader: PCSCReader
    bridges: list[VPCDBridge] = field(default_factory=list)

    @classmethod
    def start(cls, first_card: EmulatedICC, first_sam: EmulatedICC) -> ReaderRig:
        """Start pcscd and the bridges with a first card and SAM in the slots.

        Raises:
            PCSCStackError: pcscd or vpcd missing, or the readers did not appear.
        """
        stack = PCSCStack().start()
        cards, sams = ChipMultiplexer("cards"), ChipMultiplexer("sams")
        cards.present(first_card)
        sams.present(first_sam)
        bridges = [
            VPCDBridge(cards, stack.card_port, name="card").start(),
            VPCDBridge(sams, stack.sam_port, name="sam").start(),
        ]
        try:
            for bridge in bridges:
                if not bridge.wait_connected(10):
                    raise TimeoutError(f"vpcd bridge {bridge.name} did not connect")
            for name in stack.readers:
                if not stack.wait_for_card_state(name, True, 10):
                    raise TimeoutError(f"pcscd did not see a card in {name}")
            reader = PCSCReader(stack.card_reader)
            sam_reader = PCSCReader(stack.sam_reader)
        except BaseException:
            for bridge in bridges:
                bridge.stop()
            stack.stop()
            raise
        log.info("readers ready: %s", ", ".join(stack.readers))
        return cls(stack, cards, sams, reader, sam_reader, bridges)

    def present_sam(self, chip: EmulatedICC) -> None:
        """Put another terminal's SAM in the SAM slot, as pcscd sees a SAM swap: the old one
        removed, the new one inserted and powered (its ATR, which carries its serial, is the
        one the terminal's Calypso engine reads: SV commands carry that serial)."""
        if chip is self.sams.current:
            return
        bridge = self.bridges[1]
        self.sam_reader.disconnect()
        bridge.remove()
        # pcscd must see the slot empty, or it keeps the old SAM's ATR
        self.stack.wait_for_card_state(self.stack.sam_reader, False, 10)
        self.sams.present(chip)
        bridge.insert()
        if not (
            bridge.wait_connected(10)
            and self.stack.wait_for_card_state(self.stack.sam_reader, True, 10)
        ):
            raise TimeoutError("the SAM slot did not come back")

    @property
    def apdus(self) -> tuple[int, int]:
        """APDUs that went through pcscd so far: (card slot, SAM slot)."""
        return (self.bridges[0].apdus, self.bridges[1].apdus)

    def stop(self) -> None:
        """Close the readers, stop the bridges and pcscd. Idempotent."""
        for reader in (self.reader, self.sam_reader):
            try:
                reader.close()
            except Exception:
                log.debug("reader close failed", exc_info=True)
        for bridge in self.bridges:
            bridge.stop()
        self.bridges.clear()
        self.stack.stop()
