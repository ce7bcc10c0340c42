"""In-process reader: drives an emulated chip object directly, no stack in between.

Capabilities:

=====================  ======  ==============================================================
capability             status  remarks
=====================  ======  ==============================================================
transmit               yes     a method call on the chip; 61xx / 6Cxx handled by the base class
ATR / protocol         yes     the chip's ``power_on()`` answer; protocol reported as ``T=CL``
presence events        yes     :meth:`InProcessReader.insert` / :meth:`InProcessReader.remove`
tearing simulation     yes     :meth:`InProcessReader.tear_after` removes the card mid-exchange
real hardware          no      unit tests and benchmarks only
=====================  ======  ==============================================================

The chip is anything with the shape of ``hardware.icc.EmulatedICC`` (``power_on``, ``power_off``,
``transmit``). It is typed here against :class:`Chip`, a local protocol of the same shape, because
``firmware_host`` must not import ``hardware`` (import-linter layers).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from card_schema.apdu_trace import hexstr
from firmware_host.readers.base import CardRemovedError, NoCardError, Reader

log = logging.getLogger(__name__)


class Chip(Protocol):
    """Same shape as ``hardware.icc.EmulatedICC``: what the in-process reader needs of a chip."""

    def power_on(self) -> bytes:
        """Power the chip and return its ATR."""
        ...

    def power_off(self) -> None:
        """Remove power (anything uncommitted is lost)."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU and return response data + SW1 SW2.

        Raises only when the chip loses power during the command (fault injection); the reader
        reports that as the card leaving the field mid-exchange.
        """
        ...


class InProcessReader(Reader):
    """A reader whose "field" holds a Python chip object.

    Args:
        chip: the chip in the field at start, or ``None`` for an empty reader.
        name: reader name for traces.
    """

    capabilities = ("transmit", "atr", "presence-events", "tearing-simulation")

    def __init__(self, chip: Chip | None = None, name: str = "in-process") -> None:
        super().__init__(name)
        self._chip = chip
        self._changed = threading.Condition()
        self._tear_countdown: int | None = None
        self._tear_reached = True

    # -- the field ---------------------------------------------------------------------------
    def insert(self, chip: Chip) -> None:
        """Put ``chip`` in the field (it stays unpowered until :meth:`connect`)."""
        with self._changed:
            self._chip = chip
            self._changed.notify_all()

    def remove(self) -> None:
        """Take the card out of the field: power is cut, the connection is lost."""
        with self._changed:
            chip, self._chip = self._chip, None
            self._changed.notify_all()
        if chip is not None:
            chip.power_off()

    def tear_after(self, apdus: int, *, reached: bool = True) -> None:
        """Remove the card during the ``apdus``-th next exchange (1 = the next one).

        With ``reached=True`` the card executes that command and the answer is lost (the worst
        case for anti-tearing: a Close Secure Session that committed without the terminal
        knowing); with ``reached=False`` the card is gone before the command reaches it.
        """
        if apdus < 1:
            raise ValueError("apdus must be at least 1")
        self._tear_countdown = apdus
        self._tear_reached = reached

    # -- Reader hooks ------------------------------------------------------------------------
    def _connect(self) -> bytes:
        if self._chip is None:
            raise NoCardError("no card in the field", reader=self.name)
        return self._chip.power_on()

    def _disconnect(self) -> None:
        if self._chip is not None:
            self._chip.power_off()

    def _transmit_raw(self, apdu: bytes) -> bytes:
        chip = self._chip
        if chip is None:
            self._atr = None
            raise CardRemovedError(
                "card removed before the command", reader=self.name, may_have_reached_card=False
            )
        if self._tear_countdown is not None:
            self._tear_countdown -= 1
            if self._tear_countdown == 0:
                self._tear_countdown = None
                if self._tear_reached:
                    chip.transmit(apdu)
                self.remove()
                self._atr = None
                raise CardRemovedError(
                    "card removed during the exchange",
                    reader=self.name,
                    may_have_reached_card=self._tear_reached,
                )
        try:
            return chip.transmit(apdu)
        except Exception as exc:  # the chip's only exception: power lost mid-command
            log.debug("%s: chip lost power during %s", self.name, hexstr(apdu), exc_info=True)
            self.remove()
            self._atr = None
            raise CardRemovedError(
                "card lost power during the exchange", reader=self.name, may_have_reached_card=True
            ) from exc

    def _card_present(self) -> bool:
        return self._chip is not None

    def _poll(self, present: bool, timeout: float) -> bool:
        # Presence changes come from insert/remove in this process: wait on them, no polling.
        deadline = time.monotonic() + timeout
        with self._changed:
            while (self._chip is not None) != present:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True
