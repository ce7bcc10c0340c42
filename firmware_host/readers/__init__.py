"""Card readers: one base class (:mod:`.base`) and one module per driver.

================================  ===========================================================
module                            driver
================================  ===========================================================
:mod:`firmware_host.readers.pcsc`       PC/SC readers through pcscd (pyscard)
:mod:`firmware_host.readers.nfc`        nfcpy devices: USB, UART (``tty:``), UDP simulation
:mod:`firmware_host.readers.inprocess`  an emulated chip object in the same process (tests)
================================  ===========================================================

Drivers are imported on demand (``open_reader``) so that a terminal with only PC/SC does not
need nfcpy's USB stack, and the other way round.
"""

from __future__ import annotations

from card_schema.apdu_trace import TRACE, hexstr
from firmware_host.readers.base import (
    CardEvent,
    CardRemovedError,
    NoCardError,
    Reader,
    ReaderError,
    ReaderNotFoundError,
    ReaderProtocolError,
    ReaderTimeoutError,
    ReaderUnavailableError,
    TransmissionError,
)

__all__ = [
    "TRACE",
    "CardEvent",
    "CardRemovedError",
    "NoCardError",
    "Reader",
    "ReaderError",
    "ReaderNotFoundError",
    "ReaderProtocolError",
    "ReaderTimeoutError",
    "ReaderUnavailableError",
    "TransmissionError",
    "hexstr",
    "open_reader",
]


def open_reader(spec: str) -> Reader:
    """A reader from a one-line spec, as configuration files and the CLI write it.

    ``pcsc:<name pattern>`` (``pcsc:ACS ACR122U*``, ``pcsc:re:OMNIKEY.*5022``) or
    ``nfc:<nfcpy path>`` (``nfc:usb:072f:2200``, ``nfc:tty:USB0:pn532``,
    ``nfc:udp:localhost:54321``).

    Raises:
        ReaderNotFoundError: unknown scheme, or no reader matches.
    """
    scheme, _, rest = spec.partition(":")
    if scheme == "pcsc":
        from firmware_host.readers.pcsc import PCSCReader

        return PCSCReader(rest or "*")
    if scheme == "nfc":
        from firmware_host.readers.nfc import NFCReader

        return NFCReader(rest or "usb")
    raise ReaderNotFoundError(f"unknown reader spec {spec!r}: use pcsc:<pattern> or nfc:<path>")
