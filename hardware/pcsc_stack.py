"""A private ``pcscd`` with the vsmartcard ``vpcd`` driver, for tests, benchmarks and the demo.

:class:`PCSCStack` starts the real Debian ``pcscd`` (pcsc-lite) in the foreground as a child
process, with:

- **its own reader configuration**: a temporary ``reader.conf.d`` holding one vpcd entry on two
  free TCP ports (slot 0 = card, slot 1 = SAM), passed with ``pcscd --config``; the system's
  ``/etc/reader.conf.d/vpcd`` (ports 35963/35964) is left to the system's pcscd;
- **its own client socket**: pcscd 1.9.9 always creates ``/run/pcscd/pcscd.comm`` (the path is
  compiled in; only the client library reads ``PCSCLITE_CSOCK_NAME``). When the process may create
  a mount namespace (root, ``unshare``), pcscd runs in one where a private directory is
  bind-mounted on ``/run/pcscd``: the socket appears in that private directory, and clients find
  it through ``PCSCLITE_CSOCK_NAME``. A system pcscd on the standard socket is not disturbed.
  Without ``unshare``, the stack falls back to the standard socket, and refuses to start if
  another pcscd already answers there.

The client library reads ``PCSCLITE_CSOCK_NAME`` once per process, at the first PC/SC call:
:meth:`PCSCStack.start` sets it in ``os.environ`` before touching PC/SC itself, and the private
directory name depends only on the process id, so a process can stop and start its stack again.

Usage::

    with PCSCStack() as stack:            # pcscd running, both readers listed
        VPCDBridge(card, stack.card_port).start()
        PCSCReader(stack.card_reader)     # "Regioncard vpcd 00 00"

Stopping sends SIGTERM (then SIGKILL after a grace period) and removes the private directory; an
``atexit`` hook does the same if the owner forgets, so no pcscd is left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from card_schema.errors import RegionCardError

log = logging.getLogger(__name__)

PCSCD = "/usr/sbin/pcscd"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
STANDARD_SOCKET = Path("/run/pcscd/pcscd.comm")
FRIENDLY_NAME = "Regioncard vpcd"
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"


class PCSCStackError(RegionCardError):
    """pcscd could not be started, or its readers did not appear."""


def pcscd_version() -> str:
    """``pcscd --version`` first line's version number (``"1.9.9"``), or ``"unknown"``."""
    try:
        out = subprocess.run(
            [PCSCD, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except OSError:
        return "unknown"
    for word in out.split():
        if word[:1].isdigit():
            return word.rstrip(".")
    return "unknown"


def _free_port_pair() -> int:
    """A TCP port p such that p and p+1 are free on localhost (vpcd slot 0 and slot 1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return int(port)
    raise PCSCStackError("no pair of free TCP ports for vpcd")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        timeout=5,
        check=False,
    )
    return probe.returncode == 0


def _standard_socket_alive() -> bool:
    if not STANDARD_SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(STANDARD_SOCKET))
        except OSError:
            return False
    return True


class PCSCStack:
    """A pcscd process with two vpcd slots: ``card_reader`` (slot 0) and ``sam_reader`` (slot 1).

    Args:
        base_port: vpcd TCP port of slot 0 (slot 1 is ``base_port + 1``); a free pair by default.
        private_socket: run pcscd on a private socket (mount namespace); ``None`` = when possible.
        debug: start pcscd with ``--debug --apdu`` (its log is in :attr:`log_path`).

    Attributes:
        card_port, sam_port: vpcd TCP ports the bridges connect to.
        card_reader, sam_reader: PC/SC reader names of the two slots.
        socket_path: pcscd client socket (also exported as ``PCSCLITE_CSOCK_NAME``).
        log_path: pcscd's own output.
    """

    def __init__(
        self,
        base_port: int | None = None,
        *,
        private_socket: bool | None = None,
        debug: bool = False,
    ) -> None:
        self.base_port = base_port
        self.private_socket = private_socket
        self.debug = debug
        self.workdir = Path(tempfile.gettempdir()) / f"regioncard-pcscd-{os.getpid()}"
        self.card_port = 0
        self.sam_port = 0
        self.card_reader = f"{FRIENDLY_NAME} 00 00"
        self.sam_reader = f"{FRIENDLY_NAME} 00 01"
        self.socket_path = STANDARD_SOCKET
        self.log_path = self.workdir / "pcscd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._previous_env: str | None = None

    @property
    def running(self) -> bool:
        """Whether the pcscd child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of pcscd, while running."""
        return self._process.pid if self._process is not None else None

    @property
    def readers(self) -> tuple[str, str]:
        """The two reader names (card, SAM)."""
        return (self.card_reader, self.sam_reader)

    def start(self, timeout: float = 10.0) -> PCSCStack:
        """Start pcscd and wait until both vpcd readers are listed.

        Raises:
            PCSCStackError: pcscd or the vpcd driver is missing, another pcscd owns the standard
                socket (no namespace possible), or the readers did not appear within ``timeout``.
        """
        if self.running:
            return self
        if not Path(PCSCD).exists() or not VPCD_DRIVER.exists():
            raise PCSCStackError(
                f"{PCSCD} or {VPCD_DRIVER} missing: install the Debian packages pcscd and "
                "vsmartcard-vpcd (scripts/bootstrap.sh does it)"
            )
        private = _can_unshare() if self.private_socket is None else self.private_socket
        if not private and _standard_socket_alive():
            raise PCSCStackError(
                f"another pcscd answers on {STANDARD_SOCKET} and no mount namespace is available "
                "for a private one: stop it (systemctl stop pcscd.socket pcscd) or run as root"
            )
        shutil.rmtree(self.workdir, ignore_errors=True)
        run_dir = self.workdir / "run"
        conf_dir = self.workdir / "reader.conf.d"
        run_dir.mkdir(parents=True)
        conf_dir.mkdir()
        self.card_port = self.base_port or _free_port_pair()
        self.sam_port = self.card_port + 1
        # Same entry as Debian's /etc/reader.conf.d/vpcd, on our ports. vpcd opens slot n on
        # CHANNELID + n; DEVICENAME "/dev/null:<port>" means "listen, don't connect out".
        (conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{FRIENDLY_NAME}"\n'
            f"DEVICENAME   /dev/null:0x{self.card_port:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.card_port:04X}\n"
        )
        pcscd = [PCSCD, "--foreground", "--config", str(conf_dir)]
        if self.debug:
            pcscd += ["--debug", "--apdu"]
        if private:
            self.socket_path = run_dir / "pcscd.comm"
            mount = 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && shift && exec "$@"'
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh"]
            argv += [str(run_dir), *pcscd]
        else:
            self.socket_path = STANDARD_SOCKET
            argv = pcscd
        self._previous_env = os.environ.get(SOCKET_ENV)
        os.environ[SOCKET_ENV] = str(self.socket_path)
        log.info("starting %s (vpcd ports %d/%d)", " ".join(pcscd), self.card_port, self.sam_port)
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("pcscd %d ready on %s: %s", self.pid, self.socket_path, ", ".join(self.readers))
        return self

    def _wait_ready(self, timeout: float) -> None:
        from smartcard.scard import (  # the client library honours PCSCLITE_CSOCK_NAME
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCardEstablishContext,
            SCardListReaders,
            SCardReleaseContext,
        )

        deadline = time.monotonic() + timeout
        listed: list[str] = []
        while time.monotonic() < deadline:
            if not self.running:
                raise PCSCStackError(f"pcscd exited at start, see {self.log_path}: {self._tail()}")
            if self.socket_path.exists():
                rv, context = SCardEstablishContext(SCARD_SCOPE_USER)
                if rv == SCARD_S_SUCCESS:
                    try:
                        rv, listed = SCardListReaders(context, [])
                    finally:
                        SCardReleaseContext(context)
                    if rv == SCARD_S_SUCCESS and all(r in listed for r in self.readers):
                        return
            time.sleep(0.05)
        raise PCSCStackError(
            f"vpcd readers not listed by pcscd within {timeout} s (saw {listed}); "
            f"is {SOCKET_ENV} already used with another socket in this process? "
            f"log: {self._tail()}"
        )

    def wait_for_card_state(self, reader: str, present: bool, timeout: float = 5.0) -> bool:
        """Wait until pcscd reports a card present (or absent) in ``reader``.

        pcscd polls vpcd a few times a second, so a bridge that just connected or disconnected is
        seen a moment later; callers that swap cards quickly (tests, benchmarks) wait here so that
        pcscd's view is settled before the next connect.
        """
        from smartcard.scard import (
            SCARD_E_TIMEOUT,
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCARD_STATE_CHANGED,
            SCARD_STATE_PRESENT,
            SCARD_STATE_UNAWARE,
            SCardEstablishContext,
            SCardGetStatusChange,
            SCardReleaseContext,
        )

        rv, context = SCardEstablishContext(SCARD_SCOPE_USER)
        if rv != SCARD_S_SUCCESS:
            raise PCSCStackError(f"pcscd not reachable on {self.socket_path}")
        try:
            deadline = time.monotonic() + timeout
            state = SCARD_STATE_UNAWARE
            while True:
                remaining = max(0, int((deadline - time.monotonic()) * 1000))
                rv, states = SCardGetStatusChange(context, remaining, [(reader, state)])
                if rv == SCARD_S_SUCCESS:
                    state = int(states[0][1]) & ~SCARD_STATE_CHANGED
                    if bool(state & SCARD_STATE_PRESENT) == present:
                        return True
                elif rv != SCARD_E_TIMEOUT:
                    raise PCSCStackError(f"cannot watch {reader!r}: error 0x{rv & 0xFFFFFFFF:08X}")
                if time.monotonic() >= deadline:
                    return False
        finally:
            SCardReleaseContext(context)

    def _tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop pcscd and remove the private directory. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("pcscd %d ignored SIGTERM, killing it", process.pid)
                    process.kill()
                    process.wait(timeout)
            log.info("pcscd %d stopped", process.pid)
            with contextlib.suppress(ValueError):
                atexit.unregister(self.stop)
        if self._previous_env is None:
            os.environ.pop(SOCKET_ENV, None)
        else:
            os.environ[SOCKET_ENV] = self._previous_env
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PCSCStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
