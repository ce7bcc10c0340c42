"""PC/SC reader driver (pcsc-lite ``pcscd`` through pyscard's ``smartcard.scard`` layer).

Capabilities:

=====================  ======  ==============================================================
capability             status  remarks
=====================  ======  ==============================================================
transmit               yes     ``SCardTransmit``; 61xx / 6Cxx resolved by the base class
ATR / protocol         yes     from ``SCardStatus``; T=1 preferred, T=0 accepted
presence events        yes     ``SCardGetStatusChange`` (blocking, no polling thread)
reader selection       yes     name pattern: fnmatch (``"ACS ACR122U*"``) or ``re:<regex>``
sharing                yes     ``SCARD_SHARE_SHARED`` by default, exclusive on request
card removal           yes     ``CardRemovedError``; the next :meth:`PCSCReader.connect` after a
                               re-insert works
contactless cards      yes     the reader (ACR122U, OMNIKEY 5022) shows them with a PC/SC part 3
                               ATR and handles ISO 14443-4 itself
=====================  ======  ==============================================================

Which pcscd: the client library finds it through ``PCSCLITE_CSOCK_NAME`` (set by
``hardware.pcsc_stack`` in tests and the demo), else the system socket ``/run/pcscd/pcscd.comm``.

PC/SC return codes and what the driver raises (pcsc-lite ``pcsclite.h``):

==========================  =====================================  ===========================
return code                 when                                   raises (reached card?)
==========================  =====================================  ===========================
SCARD_E_NO_SERVICE          pcscd not running                      ReaderUnavailableError (no)
SCARD_E_NO_READERS_AVAIL.   no reader at all                       ReaderNotFoundError (no)
SCARD_E_UNKNOWN_READER      reader unplugged                       ReaderUnavailableError
SCARD_E_READER_UNAVAILABLE  reader unplugged                       ReaderUnavailableError
SCARD_E_NO_SMARTCARD        connect with no card                   NoCardError (no)
SCARD_W_REMOVED_CARD        card removed since the last exchange   CardRemovedError (no: pcscd
                                                                   refuses before sending)
SCARD_W_RESET_CARD          another application reset the card     CardRemovedError (no)
SCARD_W_UNPOWERED_CARD      card not powered                       NoCardError (no)
SCARD_W_UNRESPONSIVE_CARD   card does not answer the reset         NoCardError (no)
SCARD_E_NOT_TRANSACTED      the exchange broke (card left the      CardRemovedError if the
                            field mid-command, link error)         card is gone, else
                                                                   TransmissionError (yes)
SCARD_E_COMM_DATA_LOST      link error                             TransmissionError (yes)
SCARD_F_COMM_ERROR          link error                             TransmissionError (yes)
SCARD_E_TIMEOUT             no answer in time                      ReaderTimeoutError (yes)
SCARD_E_SHARING_VIOLATION   another application holds it           ReaderUnavailableError (no)
other                       -                                      ReaderError (yes if sent)
==========================  =====================================  ===========================
"""

from __future__ import annotations

import fnmatch
import re
import time

from smartcard import scard

from firmware_host.readers.base import (
    CardRemovedError,
    NoCardError,
    Reader,
    ReaderError,
    ReaderNotFoundError,
    ReaderTimeoutError,
    ReaderUnavailableError,
    TransmissionError,
)

# return code -> (error class, may the command have reached the card when raised by transmit)
_ERRORS: dict[int, tuple[type[ReaderError], bool]] = {
    scard.SCARD_E_NO_SERVICE: (ReaderUnavailableError, False),
    scard.SCARD_E_SERVICE_STOPPED: (ReaderUnavailableError, True),
    scard.SCARD_E_NO_READERS_AVAILABLE: (ReaderNotFoundError, False),
    scard.SCARD_E_UNKNOWN_READER: (ReaderUnavailableError, False),
    scard.SCARD_E_READER_UNAVAILABLE: (ReaderUnavailableError, True),
    scard.SCARD_E_NO_SMARTCARD: (NoCardError, False),
    scard.SCARD_W_REMOVED_CARD: (CardRemovedError, False),
    scard.SCARD_W_RESET_CARD: (CardRemovedError, False),
    scard.SCARD_W_UNPOWERED_CARD: (NoCardError, False),
    scard.SCARD_W_UNRESPONSIVE_CARD: (NoCardError, False),
    scard.SCARD_E_NOT_TRANSACTED: (TransmissionError, True),
    scard.SCARD_E_COMM_DATA_LOST: (TransmissionError, True),
    scard.SCARD_F_COMM_ERROR: (TransmissionError, True),
    scard.SCARD_E_TIMEOUT: (ReaderTimeoutError, True),
    scard.SCARD_E_SHARING_VIOLATION: (ReaderUnavailableError, False),
}

_PROTOCOL_NAMES = {scard.SCARD_PROTOCOL_T0: "T=0", scard.SCARD_PROTOCOL_T1: "T=1"}


def _message(rv: int) -> str:
    return f"{scard.SCardGetErrorMessage(rv)} (0x{rv & 0xFFFFFFFF:08X})"


def matches(pattern: str, name: str) -> bool:
    """Whether reader ``name`` matches ``pattern``: fnmatch, or a regex after ``re:``."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


class _Context:
    """A PC/SC context; every call checks its return code and raises the table's error."""

    def __init__(self, reader: str = "") -> None:
        self.reader = reader
        rv, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rv != scard.SCARD_S_SUCCESS:
            raise ReaderUnavailableError(
                f"service PC/SC absent (pcscd) / no PC/SC service: {_message(rv)}", reader=reader
            )

    def release(self) -> None:
        if self.handle is not None:
            scard.SCardReleaseContext(self.handle)
            self.handle = None


def list_readers(pattern: str = "*") -> list[str]:
    """Names of the PC/SC readers matching ``pattern``, in pcscd's order.

    Raises:
        ReaderUnavailableError: pcscd not running.
    """
    context = _Context()
    try:
        rv, names = scard.SCardListReaders(context.handle, [])
    finally:
        context.release()
    if rv == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if rv != scard.SCARD_S_SUCCESS:
        raise ReaderUnavailableError(f"cannot list readers: {_message(rv)}")
    return [name for name in names if matches(pattern, name)]


class PCSCReader(Reader):
    """One PC/SC reader slot, found by name pattern.

    Args:
        pattern: reader name, fnmatch pattern (``"HID Global OMNIKEY 5022*"``) or ``re:<regex>``;
            the first matching reader is used.
        exclusive: ``SCARD_SHARE_EXCLUSIVE`` instead of shared mode (a validator that must not
            let another process in between its commands).
        protocols: ``"T1"``, ``"T0"`` or ``"any"`` (T=1 or T=0, the reader chooses).
        handle_transport_status: see :class:`~firmware_host.readers.base.Reader`.

    Raises:
        ReaderNotFoundError: at construction, when no reader matches.
    """

    capabilities = (
        "transmit",
        "atr",
        "protocol T=0/T=1",
        "presence-events",
        "shared-mode",
        "name-patterns",
    )

    def __init__(
        self,
        pattern: str = "*",
        *,
        exclusive: bool = False,
        protocols: str = "any",
        handle_transport_status: bool = True,
    ) -> None:
        found = list_readers(pattern)
        if not found:
            raise ReaderNotFoundError(
                f"aucun lecteur PC/SC ne correspond à {pattern!r} / no PC/SC reader matches"
            )
        super().__init__(found[0], handle_transport_status=handle_transport_status)
        self.pattern = pattern
        self.share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        self.preferred = {
            "any": scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            "T1": scard.SCARD_PROTOCOL_T1,
            "T0": scard.SCARD_PROTOCOL_T0,
        }[protocols]
        self._context = _Context(self.name)
        self._card: int | None = None
        self._active_protocol = 0
        self._state = scard.SCARD_STATE_UNAWARE

    # -- errors ------------------------------------------------------------------------------
    def _error(self, rv: int, doing: str, *, sent: bool) -> ReaderError:
        cls, reached = _ERRORS.get(rv, (ReaderError, True))
        if cls is TransmissionError and sent and not self._card_present():
            # The exchange broke because the card left the field mid-command (vpcd, ACR122U).
            cls = CardRemovedError
            doing = f"card removed during {doing}"
        elif cls is CardRemovedError:
            doing = f"card removed before {doing}"
        return cls(
            f"{doing}: {_message(rv)}", reader=self.name, may_have_reached_card=reached and sent
        )

    # -- Reader hooks ------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        return _PROTOCOL_NAMES.get(self._active_protocol, "none")

    def _connect(self) -> bytes:
        if self._card is not None:
            self._disconnect()
        rv, card, protocol = scard.SCardConnect(
            self._context.handle, self.name, self.share, self.preferred
        )
        if rv != scard.SCARD_S_SUCCESS:
            raise self._error(rv, "connect", sent=False)
        self._card, self._active_protocol = card, protocol
        rv, _reader, _state, _protocol, atr = scard.SCardStatus(card)
        if rv != scard.SCARD_S_SUCCESS:
            raise self._error(rv, "reading the ATR", sent=False)
        return bytes(atr)

    def _disconnect(self) -> None:
        card, self._card = self._card, None
        if card is not None:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def _transmit_raw(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise NoCardError("not connected", reader=self.name)
        rv, response = scard.SCardTransmit(self._card, self._active_protocol, list(apdu))
        if rv != scard.SCARD_S_SUCCESS:
            error = self._error(rv, f"command {apdu[:4].hex(' ').upper()}", sent=True)
            if isinstance(error, CardRemovedError):
                self.disconnect()
            raise error
        return bytes(response)

    def _card_present(self) -> bool:
        self._state = self._status_change(0)
        return bool(self._state & scard.SCARD_STATE_PRESENT)

    def _status_change(self, timeout: float) -> int:
        """Event state of the reader after waiting up to ``timeout`` s for a change."""
        ms = max(0, int(timeout * 1000))
        rv, states = scard.SCardGetStatusChange(
            self._context.handle, ms, [(self.name, self._state)]
        )
        if rv == scard.SCARD_E_TIMEOUT:
            return self._state
        if rv != scard.SCARD_S_SUCCESS:
            raise self._error(rv, "watching the reader", sent=False)
        _name, event_state, _atr = states[0]
        return int(event_state) & ~scard.SCARD_STATE_CHANGED

    def _poll(self, present: bool, timeout: float) -> bool:
        # SCardGetStatusChange blocks in pcscd until the state changes: no busy polling.
        deadline = time.monotonic() + timeout
        self._state = self._status_change(0)
        while bool(self._state & scard.SCARD_STATE_PRESENT) != present:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._state = self._status_change(remaining)
        return True

    def close(self) -> None:
        super().close()
        self._disconnect()
        self._context.release()
