"""nfcpy reader driver: contactless readers driven by nfcpy itself, without pcscd.

Device paths (nfcpy ``ContactlessFrontend.open`` syntax):

==================================  =========================================================
path                                device
==================================  =========================================================
``usb`` / ``usb:072f:2200``         first USB reader nfcpy supports / an ACS ACR122U (the
                                    ``pn533_usb`` kernel module must be unbound, see
                                    ``hardware/profiles``)
``tty:USB0:pn532``, ``tty:S0:pn532``  a PN532 on a serial line (UART HSU mode)
``udp:HOST:PORT``                   nfcpy's radio simulation; ``hardware.bridges.nfc_udp``
                                    answers it as an emulated card
==================================  =========================================================

Capabilities:

=====================  ======  ==============================================================
capability             status  remarks
=====================  ======  ==============================================================
transmit               yes     nfcpy ``Type4Tag.transceive`` (ISO-DEP chaining, WTX, retries
                               are nfcpy's); 61xx / 6Cxx resolved by the base class
ATR / protocol         yes     PC/SC part 3 ATR built from the ATS historical bytes (type A)
                               or from the ATQB and ATTRIB answer (type B: application data,
                               protocol info, MBLI), so it equals what a PC/SC reader would
                               show; protocol ``T=CL``; :attr:`NFCReader.technology` says which
presence events        yes     polling: nfcpy sense for arrival, ISO-DEP presence check
                               (R(NAK)) for removal
ISO 14443-4 A / B      yes     both sensed (REQA, REQB) and driven (RATS, ATTRIB; nfcpy's
                               ``Type4ATag`` / ``Type4BTag``); type 1/2/3 tags raise
                               ``NoCardError``. The technology that answered last is polled
                               first: a type B card is found without waiting out a REQA
                               (nfcpy's udp driver waits 1 s for an ATQA that never comes)
extended APDUs         no      nfcpy's Type 4A activation sets short lengths only
=====================  ======  ==============================================================

nfcpy errors and what the driver raises:

====================================  ===============================  ==================
nfcpy error                           when                             raises (reached?)
====================================  ===============================  ==================
``IOError`` from ``open``             no device on the path            ReaderNotFoundError
                                                                       (no)
no target from ``sense``              nothing in the field             NoCardError (no)
``Type4TagCommandError`` timeout      command sent, no answer          CardRemovedError if
                                                                       the card is gone, else
                                                                       ReaderTimeoutError (yes)
``Type4TagCommandError`` other,       link or protocol error           TransmissionError
``nfc.clf.CommunicationError``                                         (yes)
====================================  ===============================  ==================
"""

from __future__ import annotations

from typing import Any

import nfc
import nfc.clf
import nfc.tag
import nfc.tag.tt4

from firmware_host.readers.base import (
    CardRemovedError,
    NoCardError,
    Reader,
    ReaderError,
    ReaderNotFoundError,
    ReaderTimeoutError,
    TransmissionError,
)


def pcsc_atr_from_historical(historical: bytes) -> bytes:
    """ATR of an ISO 14443-4 card as PC/SC readers build it (PC/SC part 3 §3.1.3.2.3).

    ``3B 8n 80 01 ‖ historical bytes ‖ TCK``: for type A the ATS historical bytes
    (:func:`historical_from_ats`), for type B those of :func:`historical_from_atqb`.
    """
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


def historical_from_ats(ats: bytes) -> bytes:
    """Historical bytes of an ATS (ISO 14443-4 §5.2): after TL, T0 and the TA/TB/TC T0 announces."""
    if len(ats) < 2:
        return b""
    t0 = ats[1]
    start = 2 + bin(t0 & 0x70).count("1")
    return bytes(ats[start : ats[0]])


def historical_from_atqb(atqb: bytes, attrib_answer: bytes) -> bytes:
    """PC/SC part 3 historical bytes of a type B card (§3.1.3.2.3.2).

    The ATQB's application data (4 bytes) and protocol info (3 bytes), then one byte whose high
    nibble is the MBLI of the ATTRIB answer (low nibble RFU, 0).
    """
    mbli = attrib_answer[0] & 0xF0 if attrib_answer else 0x00
    return bytes(atqb[5:12]) + bytes([mbli])


class NFCReader(Reader):
    """A contactless reader driven by nfcpy.

    Args:
        path: nfcpy device path (see the module table).
        targets: technologies to poll, in nfcpy's notation (``106A``, ``106B``); the one that
            found the last card is polled first.
        sense_interval: pause between polls while waiting for a card.
    """

    capabilities = ("transmit", "atr", "presence-events", "iso14443-4a", "iso14443-4b")

    def __init__(
        self,
        path: str = "usb",
        *,
        targets: tuple[str, ...] = ("106A", "106B"),
        sense_interval: float = 0.05,
    ) -> None:
        super().__init__(f"nfc:{path}")
        self.path = path
        self.targets = targets
        self.poll_interval = sense_interval  # the base class's presence polling uses it
        self._clf: Any = None
        self._tag: Any = None
        self.technology: str | None = None  # "A" or "B": the card connected (or seen) last

    # -- helpers -------------------------------------------------------------------------------
    def _frontend(self) -> Any:
        if self._clf is None:
            try:
                self._clf = nfc.ContactlessFrontend(self.path)
            except OSError as exc:
                raise ReaderNotFoundError(
                    f"no nfcpy device on {self.path!r}: {exc}", reader=self.name
                ) from exc
        return self._clf

    def _sense(self, clf: Any) -> Any:
        """Poll the field once for :attr:`targets`: the target found, or ``None``."""
        order = sorted(self.targets, key=lambda brty: brty[-1:] != self.technology)
        remote = [nfc.clf.RemoteTarget(brty) for brty in order]
        target = clf.sense(*remote, iterations=1, interval=0)
        if target is not None:
            self.technology = str(target.brty)[-1:]
        return target

    def _activate(self) -> tuple[Any, bytes]:
        """Sense once and activate a type 4 tag; returns (tag, ATR) or raises NoCardError."""
        clf = self._frontend()
        try:
            target = self._sense(clf)
        except nfc.clf.CommunicationError as exc:
            raise NoCardError(f"no card answered the poll: {exc}", reader=self.name) from exc
        if target is None:
            raise NoCardError("no card in the field", reader=self.name)
        # nfcpy's Type4ATag / Type4BTag keep nothing of the ATS / ATTRIB answer; catch them on
        # their way through so that the ATR can be built as a PC/SC reader would.
        seen: dict[str, bytes] = {}
        original = clf.exchange
        activation = {0xE0: "ats", 0x1D: "attrib"}  # RATS (type A), ATTRIB (type B)

        def exchange(send_data: bytes, timeout: float) -> Any:
            received = original(send_data, timeout)
            if send_data and send_data[0] in activation and received is not None:
                seen.setdefault(activation[send_data[0]], bytes(received))
            return received

        clf.exchange = exchange
        try:
            tag = nfc.tag.activate(clf, target)
        finally:
            del clf.exchange
        if not isinstance(tag, nfc.tag.tt4.Type4Tag):
            raise NoCardError(f"not an ISO 14443-4 card: {tag}", reader=self.name)
        if target.sensb_res is not None:
            historical = historical_from_atqb(bytes(target.sensb_res), seen.get("attrib", b""))
        else:
            historical = historical_from_ats(seen.get("ats", b""))
        return tag, pcsc_atr_from_historical(historical)

    # -- Reader hooks ------------------------------------------------------------------------
    def _connect(self) -> bytes:
        self._tag, atr = self._activate()
        return atr

    def _disconnect(self) -> None:
        self._tag = None
        if self._clf is not None:
            self._clf.device.mute()  # field off: the card is reset at the next connect

    def _transmit_raw(self, apdu: bytes) -> bytes:
        if self._tag is None:
            raise NoCardError("not connected", reader=self.name)
        try:
            response = self._tag.transceive(bytearray(apdu))
        except nfc.tag.tt4.Type4TagCommandError as exc:
            raise self._link_error(exc, timeout=exc.errno == nfc.tag.TIMEOUT_ERROR) from exc
        except nfc.clf.CommunicationError as exc:
            raise self._link_error(exc, timeout=isinstance(exc, nfc.clf.TimeoutError)) from exc
        if response is None:
            raise TransmissionError("no response frame", reader=self.name)
        return bytes(response)

    def _link_error(self, exc: Exception, *, timeout: bool) -> ReaderError:
        if not self._tag_present():
            self._tag = None
            self._atr = None
            return CardRemovedError(f"card removed during the exchange ({exc})", reader=self.name)
        if timeout:
            return ReaderTimeoutError(f"no answer from the card ({exc})", reader=self.name)
        return TransmissionError(f"ISO-DEP error ({exc})", reader=self.name)

    def _tag_present(self) -> bool:
        try:
            return bool(self._tag is not None and self._tag.is_present)
        except nfc.clf.CommunicationError:
            return False

    def _card_present(self) -> bool:
        if self._tag is not None:
            return self._tag_present()
        clf = self._frontend()
        try:
            found = self._sense(clf) is not None
        except nfc.clf.CommunicationError:
            found = False
        clf.device.mute()
        return found

    def close(self) -> None:
        super().close()
        if self._clf is not None:
            self._clf.close()
            self._clf = None
