"""libosdp channel over a pyserial port: the RS-485 line seen from the host.

libosdp's Python binding takes any object with ``read``/``write``/``flush`` (``osdp.Channel``); this
one wraps a ``serial.Serial`` opened non-blocking, so libosdp's refresh loop never waits on the
line. It also keeps the time of the last byte received: the gate's fast silence detector
(:mod:`firmware_host.osdp.gate`) uses it, because libosdp itself only declares a peripheral offline
after about eight seconds of retries.
"""

from __future__ import annotations

import logging
import threading
import time

import osdp
import serial

from firmware_host.osdp.errors import SerialLinkError

log = logging.getLogger(__name__)


class SerialChannel(osdp.Channel):
    """A pyserial port as a libosdp channel.

    Args:
        port: device path (``/dev/ttyUSB0``, or a pty slave in tests).
        baudrate: line speed; OSDP uses 9600 to 115200.
    """

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        super().__init__()
        try:
            self._serial = serial.Serial(port, baudrate, timeout=0, write_timeout=0.1)
        except (serial.SerialException, OSError) as exc:
            raise SerialLinkError(f"cannot open {port}: {exc}") from exc
        self.port = port
        self._lock = threading.Lock()
        self.last_rx = time.monotonic()
        self.bytes_received = 0
        self._error_logged = False

    def read(self, max_bytes: int) -> bytes:
        """Whatever is waiting, at most ``max_bytes``; never blocks."""
        try:
            data: bytes = self._serial.read(max_bytes)
        except (serial.SerialException, OSError) as exc:
            self._log_error("read", exc)
            return b""
        if data:
            self.last_rx = time.monotonic()
            self.bytes_received += len(data)
            self._error_logged = False
        return data

    def write(self, buf: bytes) -> int:
        """Send a frame; returns the bytes written (0 when the line refuses them)."""
        try:
            written = self._serial.write(buf)
        except (serial.SerialException, OSError) as exc:
            self._log_error("write", exc)
            return 0
        return int(written or 0)

    def flush(self) -> None:
        """Drop stale input, as libosdp asks before it starts a new exchange."""
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self._log_error("flush", exc)

    def seconds_since_rx(self) -> float:
        """Seconds since the last byte came in."""
        return time.monotonic() - self.last_rx

    def close(self) -> None:
        """Close the port."""
        self._serial.close()

    def _log_error(self, what: str, exc: Exception) -> None:
        # Once per outage: libosdp retries every few milliseconds.
        if not self._error_logged:
            log.warning("serial %s on %s failed: %s", what, self.port, exc)
            self._error_logged = True
