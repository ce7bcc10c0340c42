"""PC/SC bridge: an emulated chip appears as a card in a reader of the real ``pcscd``.

vsmartcard's ``vpcd`` is a pcscd reader driver that listens on a TCP port per slot; a "virtual
ICC" connects to it and answers its requests. This module is that virtual ICC side, written for
this project from the protocol of vsmartcard's ``vpicc`` (VirtualSmartcard.py):

- every message, both ways, is a 2-byte big-endian length followed by the payload;
- a 1-byte payload from vpcd is a control, answered only for "get ATR":

  =====  ==========  ==============================================
  byte   control     bridge action
  =====  ==========  ==============================================
  0x00   power off   ``chip.power_off()``
  0x01   power on    ``chip.power_on()`` (ATR kept for 0x04)
  0x02   reset       ``power_off()`` then ``power_on()``
  0x04   get ATR     answer with the ATR bytes (vpcd polls this for presence)
  =====  ==========  ==============================================

- any longer payload is a command APDU, answered with the chip's response (data + SW).

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

DEFAULT_PORT = 35963  # Debian's /etc/reader.conf.d/vpcd: slot 0 on 35963, slot 1 on 35964


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
    ) -> None:
        self.chip = chip
        self.host = host
        self.port = port
        self.name = name
        self.retry_interval = retry_interval
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
        while True:
            header = _recv_exactly(sock, 2)
            if header is None:
                return
            (length,) = struct.unpack(">H", header)
            payload = _recv_exactly(sock, length) if length else b""
            if payload is None:
                return
            if length == 1:
                self._control(sock, payload[0])
            elif length > 1:
                self.apdus += 1
                try:
                    response = self._transmit(payload)
                except ChipPowerLost:
                    # No answer: the card leaves the field mid-command and pcscd sees it go.
                    log.info("%s: power lost during a command; card out of the field", self.name)
                    with self._lock:
                        self._inserted = False
                    return
                _send(sock, response)

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
        else:
            log.warning("%s: unknown vpcd control 0x%02X ignored", self.name, code)

    def _transmit(self, apdu: bytes) -> bytes:
        return answer(self.chip, apdu, self.name)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """Read exactly ``size`` bytes; ``None`` when the peer closed the connection."""
    chunks = bytearray()
    while len(chunks) < size:
        _quickack(sock)
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
