"""What every card reader driver offers: one base class, one error family, one APDU trace format.

A driver (PC/SC, nfcpy, in-process) subclasses :class:`Reader` and implements the few ``_``-prefixed
hooks; the public methods (``transmit`` with its ISO 7816-4 case handling, tracing, presence waits)
live here once, so the terminal code sees the same behaviour whatever the reader.

Errors (all :class:`ReaderError`, all carrying ``may_have_reached_card``):

==========================  =========================================================  =============
error                       meaning                                                    may have
                                                                                       reached card
==========================  =========================================================  =============
``ReaderNotFoundError``     no reader matches the name or device path                  no
``ReaderUnavailableError``  the reader stack is down (pcscd not running, USB gone)      no, unless
                                                                                       mid-command
``NoCardError``             no card in the field / slot when connecting                no
``CardRemovedError``        the card left during the exchange or since the last one    yes if raised
                                                                                       by transmit
``ReaderTimeoutError``      the command was sent, no answer in time                    yes
``TransmissionError``       framing or link error after the command went out           yes
``ReaderProtocolError``     malformed command given to the driver (not sent)           no
==========================  =========================================================  =============

``may_have_reached_card`` is what tearing recovery keys on: ``True`` means the card may have
executed the command (a Close Secure Session may have committed), so the terminal must check the
card at the next tap instead of assuming nothing happened.

ISO 7816-4 transport status words the base class handles itself (ISO/IEC 7816-4 §5.1.3, and
ISO/IEC 7816-3 §12.2 for T=0 cases 2 and 4):

======  ==========================================  =======================================
SW      meaning                                     what ``transmit`` does
======  ==========================================  =======================================
61xx    xx more response bytes are available        GET RESPONSE (``00 C0 00 00 xx``), and
                                                    again while 61xx comes back
6Cxx    wrong Le, xx is the exact length            re-send the same command with Le = xx
======  ==========================================  =======================================
"""

from __future__ import annotations

import abc
import enum
import logging
import time
from types import TracebackType

from card_schema.apdu_trace import hexstr, trace
from card_schema.errors import RegionCardError

_MAX_GET_RESPONSE = 32  # bound on chained 61xx rounds: a card looping on 61xx is a broken card


class ReaderError(RegionCardError):
    """A reader could not carry a command to the card and its answer back.

    Attributes:
        reader: name of the reader concerned.
        may_have_reached_card: ``True`` when the command may have been executed by the card (it went
            out, and no answer came back); ``False`` when the card certainly never saw it.
    """

    default_reached = False

    def __init__(
        self, message: str, *, reader: str = "", may_have_reached_card: bool | None = None
    ) -> None:
        self.reader = reader
        self.may_have_reached_card = (
            self.default_reached if may_have_reached_card is None else may_have_reached_card
        )
        super().__init__(f"{reader}: {message}" if reader else message)


class ReaderNotFoundError(ReaderError):
    """No reader matches the requested name pattern or device path."""


class ReaderUnavailableError(ReaderError):
    """The reader stack itself is not usable (pcscd not running, device unplugged)."""


class NoCardError(ReaderError):
    """No card is present when the driver tries to connect."""


class CardRemovedError(ReaderError):
    """The card left the field (or the slot) during or since the last exchange."""

    default_reached = True


class ReaderTimeoutError(ReaderError):
    """The command was sent and no answer came back in time."""

    default_reached = True


class TransmissionError(ReaderError):
    """A link-level error after the command went out (framing, protocol, lost data)."""

    default_reached = True


class ReaderProtocolError(ReaderError):
    """The command given to the driver is malformed; nothing was sent."""


class CardEvent(enum.Enum):
    """Presence changes a reader reports."""

    INSERTED = "inserted"
    REMOVED = "removed"


class Reader(abc.ABC):
    """One card reader (one slot, one field) as the terminal software drives it.

    Subclasses implement the hooks ``_connect``, ``_disconnect``, ``_transmit_raw`` and
    ``_card_present``; they may override :meth:`wait_for_card` / :meth:`wait_for_removal` when the
    stack has a blocking wait (PC/SC ``SCardGetStatusChange``) instead of polling.

    Usage::

        with PCSCReader("ACS ACR122U*") as reader:   # connects to the card
            response = reader.transmit(bytes.fromhex("00A404000831544943 2E494341 00"))

    Attributes:
        name: a human-readable reader name, used in traces and error messages.
        handle_transport_status: apply the 61xx / 6Cxx rules of the module table in
            :meth:`transmit`. Turn off to see the raw status words.
        poll_interval: seconds between presence polls in the default wait methods.
    """

    #: One line per capability, for ``regioncard`` help texts and docs (overridden by drivers).
    capabilities: tuple[str, ...] = ()

    def __init__(self, name: str, *, handle_transport_status: bool = True) -> None:
        self.name = name
        self.handle_transport_status = handle_transport_status
        self.poll_interval = 0.05
        self._atr: bytes | None = None
        self._log = logging.getLogger(type(self).__module__)

    # -- hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> bytes:
        """Connect to the card in the field; return its ATR (PC/SC form for contactless cards)."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Release the card (leave it powered if the stack allows; the next connect resets it)."""

    @abc.abstractmethod
    def _transmit_raw(self, apdu: bytes) -> bytes:
        """Send one command APDU as is and return data + SW1 SW2 as received."""

    @abc.abstractmethod
    def _card_present(self) -> bool:
        """Whether a card is in the field / slot right now."""

    # -- public API --------------------------------------------------------------------------
    @property
    def atr(self) -> bytes:
        """ATR of the connected card.

        Raises:
            NoCardError: not connected.
        """
        if self._atr is None:
            raise NoCardError("not connected to a card", reader=self.name)
        return self._atr

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` succeeded and :meth:`disconnect` was not called since."""
        return self._atr is not None

    @property
    def protocol(self) -> str:
        """Transmission protocol in use: ``"T=1"``, ``"T=0"`` or ``"T=CL"`` (contactless)."""
        return "T=CL"

    def connect(self) -> bytes:
        """Connect to the card now in the reader and return its ATR.

        Raises:
            NoCardError: no card present.
            ReaderError: the reader itself failed.
        """
        self._atr = bytes(self._connect())
        self._log.debug("%s: connected, ATR %s (%s)", self.name, hexstr(self._atr), self.protocol)
        return self._atr

    def disconnect(self) -> None:
        """Release the card. Safe to call when not connected."""
        if self._atr is not None:
            self._atr = None
            self._disconnect()
            self._log.debug("%s: disconnected", self.name)

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU and return the response data followed by SW1 SW2.

        61xx and 6Cxx are resolved here (see the module table) unless
        :attr:`handle_transport_status` is off; every command and response sent on the link is
        traced at :data:`TRACE` level.

        Raises:
            ReaderProtocolError: ``apdu`` is shorter than a 4-byte header; nothing sent.
            ReaderError: see the module table; ``may_have_reached_card`` tells about tearing.
        """
        apdu = bytes(apdu)
        if len(apdu) < 4:
            raise ReaderProtocolError(
                f"command APDU {hexstr(apdu)!r} is shorter than CLA INS P1 P2", reader=self.name
            )
        if self._atr is None:
            raise NoCardError("transmit without a connected card", reader=self.name)
        response = self._exchange(apdu)
        if not self.handle_transport_status:
            return response
        sw1, sw2 = response[-2], response[-1]
        if sw1 == 0x6C:
            # ISO 7816-3 §12.2.3: the card tells the exact Le; re-issue the same command with it.
            response = self._exchange(_with_le(apdu, sw2))
            sw1, sw2 = response[-2], response[-1]
        data = bytearray()
        rounds = 0
        while sw1 == 0x61 and rounds < _MAX_GET_RESPONSE:
            data += response[:-2]
            response = self._exchange(bytes([_get_response_cla(apdu[0]), 0xC0, 0x00, 0x00, sw2]))
            sw1, sw2 = response[-2], response[-1]
            rounds += 1
        if rounds:
            return bytes(data) + response
        return response

    def _exchange(self, apdu: bytes) -> bytes:
        trace(self._log, ">>", apdu, self.name)
        response = bytes(self._transmit_raw(apdu))
        trace(self._log, "<<", response, self.name)
        if len(response) < 2:
            raise TransmissionError(
                f"response {hexstr(response)!r} has no status word", reader=self.name
            )
        return response

    def card_present(self) -> bool:
        """Whether a card is in the field / slot now (does not connect)."""
        return self._card_present()

    def wait_for_card(self, timeout: float) -> bool:
        """Block until a card is present: ``True`` if one is, ``False`` after ``timeout`` s."""
        return self._poll(True, timeout)

    def wait_for_removal(self, timeout: float) -> bool:
        """Block until the card is gone; ``True`` if it is, ``False`` after ``timeout`` seconds."""
        return self._poll(False, timeout)

    def wait_for_event(self, timeout: float) -> CardEvent | None:
        """Wait for the next presence change from the state seen now; ``None`` after ``timeout``."""
        if self.card_present():
            return CardEvent.REMOVED if self.wait_for_removal(timeout) else None
        return CardEvent.INSERTED if self.wait_for_card(timeout) else None

    def _poll(self, present: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._card_present() == present:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval)

    def close(self) -> None:
        """Disconnect and release the reader itself (driver resources). Idempotent."""
        self.disconnect()

    def __enter__(self) -> Reader:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _get_response_cla(cla: int) -> int:
    """GET RESPONSE class byte: Calypso rev 1 cards want 94; ISO keeps the logical channel."""
    return 0x94 if cla == 0x94 else cla & 0x03


def _with_le(apdu: bytes, le: int) -> bytes:
    """The same short command APDU with its Le replaced (or added) — ISO 7816-4 §5.1 cases 2/4."""
    header, body = apdu[:4], apdu[4:]
    if not body:  # case 1 -> case 2
        return header + bytes([le])
    lc = body[0]
    if len(body) == 1:  # case 2: replace Le
        return header + bytes([le])
    if lc and len(body) >= 1 + lc:  # case 3 or 4: keep the data, set Le
        return header + body[: 1 + lc] + bytes([le])
    return apdu  # extended or malformed: leave it to the card
