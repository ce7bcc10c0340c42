"""The RS-485 line of the emulated gate: a pseudo-terminal pair, and faults to put on it.

The peripheral owns the pty master; the host opens the slave's path (``/dev/pts/N``) with pyserial
exactly as it would open ``/dev/ttyUSB0``. :class:`PtyChannel` is the libosdp channel over the
master, with a cable that can be pulled out and frames that can be garbled or cut short.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import os
import threading
import tty

import osdp

from hardware.osdp_peripheral.errors import PeripheralEmulatorError

log = logging.getLogger(__name__)


class PtyPair:
    """A pseudo-terminal pair in raw mode, master non-blocking.

    Attributes:
        master_fd: the peripheral's end.
        slave_path: the device path the host opens (``/dev/pts/N``).
    """

    def __init__(self) -> None:
        try:
            self.master_fd, self._slave_fd = os.openpty()
        except OSError as exc:
            raise PeripheralEmulatorError(f"cannot open a pseudo-terminal: {exc}") from exc
        tty.setraw(self.master_fd)
        tty.setraw(self._slave_fd)
        flags = fcntl.fcntl(self.master_fd, fcntl.F_GETFL)
        fcntl.fcntl(self.master_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.slave_path = os.ttyname(self._slave_fd)

    def inject_towards_host(self, data: bytes) -> None:
        """Put raw bytes on the line as if the peripheral had sent them (noise, stray frames)."""
        os.write(self.master_fd, data)

    def close(self) -> None:
        """Close both ends. Keeping the slave open until here avoids EIO on the master meanwhile."""
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class LineFault(enum.Enum):
    """What happens to the next frames the peripheral sends."""

    GARBLE = "garble"  # one byte flipped in the middle: the CRC no longer matches
    TRUNCATE = "truncate"  # only the first half of the frame goes out


class PtyChannel(osdp.Channel):
    """libosdp channel over the pty master, with a pluggable cable and fault injection.

    Args:
        pair: the pseudo-terminal pair.
    """

    def __init__(self, pair: PtyPair) -> None:
        super().__init__()
        self._fd = pair.master_fd
        self._lock = threading.Lock()
        self._plugged = True
        self._fault: LineFault | None = None
        self._fault_frames = 0
        self.faults_applied = 0
        self.bytes_received = 0

    @property
    def plugged(self) -> bool:
        """Whether the cable is in."""
        return self._plugged

    def unplug(self) -> None:
        """Pull the cable out: nothing gets through either way until :meth:`plug`."""
        log.info("line: cable unplugged")
        self._plugged = False

    def plug(self) -> None:
        """Put the cable back."""
        log.info("line: cable plugged back")
        self._plugged = True

    def inject_fault(self, fault: LineFault, frames: int = 1) -> None:
        """Damage the next ``frames`` frames the peripheral writes."""
        with self._lock:
            self._fault = fault
            self._fault_frames = frames

    def read(self, max_bytes: int) -> bytes:
        """Read what the host sent (nothing while unplugged; the bytes are lost on the line)."""
        try:
            data = os.read(self._fd, max_bytes)
        except (BlockingIOError, OSError):
            return b""
        if not self._plugged:
            return b""
        self.bytes_received += len(data)
        return data

    def write(self, buf: bytes) -> int:
        """Send a frame towards the host, applying any pending fault."""
        if not self._plugged:
            return len(buf)
        data = bytes(buf)
        with self._lock:
            if self._fault is not None and self._fault_frames > 0:
                if self._fault is LineFault.GARBLE:
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :]
                else:
                    data = data[: max(1, len(data) // 2)]
                self._fault_frames -= 1
                self.faults_applied += 1
                log.info("line: %s frame (%d bytes sent)", self._fault.value, len(data))
        try:
            os.write(self._fd, data)
        except (BlockingIOError, OSError) as exc:
            log.debug("line: write failed: %s", exc)
            return 0
        return len(buf)

    def flush(self) -> None:
        """Nothing is buffered on our side of the pty."""
