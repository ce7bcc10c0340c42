"""PC/SC bridge: an emulated chip appears as a card in a reader of the real ``pcscd``.

vsmartcard's ``vpcd`` is a pcscd reader driver that listens on a TCP port per slot; a "virtual
ICC" connects to it and answers its requests. This module is that virtual ICC side, written for
this project from the protocol of vsmartcard's ``vpicc`` (VirtualSmartcard.py):

- every message, both ways, is a 2-byte big-endian length followed by the payload;
- vpcd (``vpcd.c``: ``vicc_poweroff``, ``vicc_poweron``, ``vicc_reset``, ``vicc_getatr``) sends
  four 1-byte controls; only "get ATR" expects an answer:

  =====  ==========  ==================================================================
  byte   control     bridge action
  =====  ==========  ==================================================================
  0x00   power off   ``chip.power_off()``
  0x01   power on    ``chip.power_on()`` (ATR kept for 0x04)
  0x02   reset       ``power_off()`` then ``power_on()``
  0x04   get ATR     answer with the ATR bytes (vpcd polls this for presence)
  =====  ==========  ==================================================================

- every other payload is a command APDU from the application, passed on by vpcd's
  ``vicc_transmit`` unchanged whatever its length, and vpcd blocks until it gets an answer. The
  chip answers it, malformed or not (a 1-, 2- or 3-byte "APDU" gets ``6700`` wrong length).

**One-byte APDUs.** vpcd frames a 1-byte APDU exactly like a control (pcscd passes ``FF`` down
as it is; only an empty APDU is refused, by the client library). So the bridge takes a 1-byte
message as a control only for the four bytes above; any other byte (``FF``...) is an APDU and is
answered. For ``00``, ``01`` and ``02`` the bytes alone cannot tell, so the bridge uses what vpcd
does next: after a real power on or reset vpcd asks for the ATR at once (``IFDHPowerICC`` reads it
in the same call), and after a power off pcscd's presence poll asks for it within 400 ms (pcscd
1.9.9 polls every 400 ms, card present or not, clients or not: measured). After a real control,
vpcd is never silent. While it waits for the answer to an APDU, it sends nothing at all (every
exchange holds one lock, the poll included). So the bridge holds back the control until the
next message:

- a message arrives within ``control_grace`` seconds (2 s, five poll periods): the byte was a
  control; it is carried out, then the new message is handled;
- nothing arrives: the byte was an APDU that vpcd is waiting on; the chip answers it (``6700``)
  and the reader carries on. That APDU's answer takes ``control_grace`` seconds.

Two cases stay ambiguous. A 1-byte APDU ``04`` gets the ATR, as vpcd's protocol says for that
byte. A real control followed by more than ``control_grace`` seconds of silence from pcscd (a
pcscd stalled for five poll periods) would be taken for an APDU, and the unasked-for answer would
shift every later answer by one until the card is removed. Our own terminals never send 1-byte
APDUs: ``Reader.transmit`` refuses anything shorter than a 4-byte header before sending it.

Card presence is the TCP connection itself: the bridge connected means a card in the reader.
:meth:`VPCDBridge.remove` closes the connection and pcscd reports the card removed at its next
poll; :meth:`VPCDBridge.insert` reconnects and pcscd reports a new card (with a fresh ATR read).

Latency: vpcd writes the length and the payload of each message in two ``send`` calls. With
Linux delayed ACKs on our side and Nagle's algorithm on vpcd's, the second part waits for our ACK,
about 40 ms per APDU. The bridge sets ``TCP_NODELAY`` on its socket (its own answers go out at
once) and re-arms ``TCP_QUICKACK`` before each read (our ACKs go out at once): round trips drop
from ~48 ms to ~0.1 ms through pcscd.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading

from card_schema.errors import RegionCardError
from hardware.icc import ChipPowerLost, EmulatedICC, answer

log = logging.getLogger(__name__)

VPCD_CTRL_OFF = 0x00
VPCD_CTRL_ON = 0x01
VPCD_CTRL_RESET = 0x02
VPCD_CTRL_ATR = 0x04

VPCD_CONTROLS = frozenset({VPCD_CTRL_OFF, VPCD_CTRL_ON, VPCD_CTRL_RESET, VPCD_CTRL_ATR})
#: Controls that vpcd sends without waiting for an answer: a 1-byte APDU looks the same.
VPCD_SILENT_CONTROLS = frozenset({VPCD_CTRL_OFF, VPCD_CTRL_ON, VPCD_CTRL_RESET})

DEFAULT_PORT = 35963  # Debian's /etc/reader.conf.d/vpcd: slot 0 on 35963, slot 1 on 35964
#: pcscd polls a vpcd slot for presence ("get ATR") every 400 ms (PCSCLITE_STATUS_POLL_RATE);
#: five polls missed after a 1-byte 00/01/02 means vpcd is waiting for an answer.
DEFAULT_CONTROL_GRACE = 2.0


class BridgeError(RegionCardError):
    """A bridge could not start or lost its peer for good."""


class VPCDBridge:
    """Connects one emulated chip to one vpcd slot, in a background thread.

    Args:
        chip: the emulated card or SAM.
        port: vpcd's TCP port for the slot (35963 + slot number by default on Debian).
        host: where pcscd/vpcd runs.
        name: label for logs (``"card"``, ``"SAM"``).
        inserted: start with the card in the reader.
        retry_interval: seconds between connection attempts while vpcd is not listening yet.
        control_grace: seconds of silence after a 1-byte ``00``/``01``/``02`` message that make
            it an APDU vpcd waits on rather than a control (see the module docstring).

    Usage::

        with VPCDBridge(card, port=35963) as bridge:
            bridge.wait_connected(5)
            ...                      # pcscd sees a card in "Virtual PCD 00 00"
            bridge.remove()          # card removal event
            bridge.insert()          # card insertion event
    """

    def __init__(
        self,
        chip: EmulatedICC,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        *,
        name: str = "vicc",
        inserted: bool = True,
        retry_interval: float = 0.05,
        control_grace: float = DEFAULT_CONTROL_GRACE,
    ) -> None:
        self.chip = chip
        self.host = host
        self.port = port
        self.name = name
        self.retry_interval = retry_interval
        self.control_grace = control_grace
        self.apdus = 0
        self._atr = b""
        self._inserted = inserted
        self._stopping = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._connected = threading.Event()
        self._released = threading.Event()  # set while no connection is being served
        self._released.set()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> VPCDBridge:
        """Start the bridge thread (returns at once; see :meth:`wait_connected`)."""
        if self._thread is not None:
            raise BridgeError(f"{self.name}: bridge already started")
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"vpcd-bridge-{self.name}-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect from vpcd (card removed), power the chip off and end the thread."""
        with self._lock:
            self._stopping = True
            self._drop_connection()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise BridgeError(f"{self.name}: bridge thread did not stop in {timeout} s")
            self._thread = None

    def __enter__(self) -> VPCDBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- presence ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether vpcd has the card right now."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the bridge is connected to vpcd (card in the reader)."""
        return self._connected.wait(timeout)

    def remove(self, timeout: float = 5.0) -> None:
        """Take the card out of the reader: close the connection; pcscd reports the removal.

        Returns once the chip is powered off (or after ``timeout`` seconds).
        """
        with self._lock:
            self._inserted = False
            self._drop_connection()
            self._wake.notify_all()
        if threading.current_thread() is not self._thread:
            self._released.wait(timeout)

    def insert(self) -> None:
        """Put the card back: reconnect to vpcd; pcscd reports the insertion."""
        with self._lock:
            self._inserted = True
            self._atr = b""
            self._wake.notify_all()

    # -- thread ------------------------------------------------------------------------------
    def _drop_connection(self) -> None:
        # caller holds the lock; shutdown wakes the thread blocked in recv
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self._connected.clear()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and not self._inserted:
                    self._wake.wait()
                if self._stopping:
                    return
            sock = self._connect()
            if sock is None:
                continue
            try:
                self._serve(sock)
            except OSError as exc:
                log.debug("%s: connection to vpcd ended: %s", self.name, exc)
            finally:
                with self._lock:
                    self._sock = None
                    self._connected.clear()
                sock.close()
                self.chip.power_off()
                self._released.set()
                log.info("%s: card removed from %s:%d", self.name, self.host, self.port)

    def _connect(self) -> socket.socket | None:
        """One connection attempt; ``None`` (after a short pause) if vpcd is not listening yet."""
        if not self._atr:
            # Learn the ATR before vpcd asks for it: it polls "get ATR" before any "power on".
            self._atr = self.chip.power_on()
            self.chip.power_off()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=1.0)
        except OSError as exc:
            log.debug("%s: vpcd not reachable on %s:%d (%s)", self.name, self.host, self.port, exc)
            with self._lock:
                if not self._stopping:
                    self._wake.wait(self.retry_interval)
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._stopping or not self._inserted:
                sock.close()
                return None
            self._sock = sock
            self._released.clear()
            self._connected.set()
        log.info("%s: card inserted in vpcd %s:%d", self.name, self.host, self.port)
        return sock

    def _serve(self, sock: socket.socket) -> None:
        held: int | None = None  # a 1-byte 00/01/02: control or APDU, told by what comes next
        while True:
            wait = None if held is None else self.control_grace
            header = _recv_exactly(sock, 2, first_timeout=wait)
            if isinstance(header, _Silence) and held is not None:
                # vpcd is silent only while it waits for an answer: the byte was an APDU.
                log.info("%s: 1-byte message %02X unanswered by vpcd: an APDU", self.name, held)
                if not self._command(sock, bytes([held])):
                    return
                held = None
                continue
            if not isinstance(header, bytes):
                return
            if held is not None:
                self._control(sock, held)  # vpcd went on: the byte was a control
                held = None
            (length,) = struct.unpack(">H", header)
            payload = _recv_exactly(sock, length) if length else b""
            if not isinstance(payload, bytes):
                return
            if length == 1 and payload[0] in VPCD_SILENT_CONTROLS:
                held = payload[0]
            elif length == 1 and payload[0] == VPCD_CTRL_ATR:
                self._control(sock, payload[0])
            elif length and not self._command(sock, payload):
                return

    def _command(self, sock: socket.socket, apdu: bytes) -> bool:
        """Answer one command APDU; ``False`` when the chip lost power (card out of the field)."""
        self.apdus += 1
        try:
            response = self._transmit(apdu)
        except ChipPowerLost:
            # No answer: the card leaves the field mid-command and pcscd sees it go.
            log.info("%s: power lost during a command; card out of the field", self.name)
            with self._lock:
                self._inserted = False
            return False
        _send(sock, response)
        return True

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == VPCD_CTRL_OFF:
            log.debug("%s: power off", self.name)
            self.chip.power_off()
        elif code == VPCD_CTRL_ON:
            log.debug("%s: power on", self.name)
            self._atr = self.chip.power_on()
        elif code == VPCD_CTRL_RESET:
            log.debug("%s: reset", self.name)
            self.chip.power_off()
            self._atr = self.chip.power_on()
        elif code == VPCD_CTRL_ATR:
            _send(sock, self._atr)

    def _transmit(self, apdu: bytes) -> bytes:
        return answer(self.chip, apdu, self.name)


class _Silence:
    """What :func:`_recv_exactly` returns when nothing at all came within its first timeout."""


_SILENCE = _Silence()


def _recv_exactly(
    sock: socket.socket, size: int, *, first_timeout: float | None = None
) -> bytes | _Silence | None:
    """Read exactly ``size`` bytes; ``None`` when the peer closed the connection.

    With ``first_timeout``, :data:`_SILENCE` when no byte at all arrived in that many seconds; once
    a message has begun, the rest is awaited without a limit (vpcd sends a message in full).
    """
    chunks = bytearray()
    while len(chunks) < size:
        _quickack(sock)
        if first_timeout is not None and not chunks:
            sock.settimeout(first_timeout)
            try:
                chunk = sock.recv(size - len(chunks))
            except TimeoutError:
                return _SILENCE
            finally:
                sock.settimeout(None)
        else:
            chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _quickack(sock: socket.socket) -> None:
    # Linux resets TCP_QUICKACK after use, so it is re-armed before every read.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)
