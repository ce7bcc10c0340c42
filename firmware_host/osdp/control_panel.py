"""OSDP control panel for one gate peripheral, on libosdp's Python binding over pyserial.

libosdp does the protocol: framing, CRC-16, sequence numbers and retries, the secure channel
(SCBK, session keys, MACs), polling, peripheral identification and capabilities, file transfer.
This module adds what a gate needs on top:

- a refresh loop faster than the binding's (5 ms instead of 20 ms), so exchanges on a pty or a fast
  line are not throttled by the host;
- a link supervisor: libosdp needs about eight seconds of retries to declare a peripheral offline,
  then waits five minutes before it tries again. The supervisor declares the link down after
  ``silence_timeout`` seconds without a byte, and re-probes (``disable_pd``/``enable_pd``) every
  ``reprobe_interval`` seconds until the peripheral answers with its secure channel up;
- input and tamper state from the peripheral's status reports;
- firmware updates that resume after a cut, through our ``osdp_MFG`` exchanges
  (see :mod:`card_schema.osdp_tables`).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import osdp

from card_schema.osdp_tables import (
    DEFAULT_ADDRESS,
    FILE_ID_FIRMWARE,
    IMAGE_TAG_LENGTH,
    VENDOR_CODE,
    BuzzerTone,
    Input,
    LEDControl,
    LocalStatus,
    MfgCommand,
    Output,
    OutputControl,
    TextControl,
    UpdateResult,
    image_tag,
)
from firmware_host.osdp.channel import SerialChannel
from firmware_host.osdp.errors import FirmwareUpdateError, PeripheralError, PeripheralOfflineError

log = logging.getLogger(__name__)

#: Longest text an ``osdp_TEXT`` command carries (libosdp's OSDP_CMD_TEXT_MAX_LEN), in bytes.
TEXT_MAX_BYTES = 32

_REFRESH_S = 0.005
_NOTIFY_COMMAND = osdp.EventNotification.Command
_NOTIFY_SC = osdp.EventNotification.SecureChannelStatus
_NOTIFY_PD = osdp.EventNotification.PeripheralDeviceStatus

#: Capabilities the gate relies on (OSDP function codes), with their names for logs.
GATE_CAPABILITIES = {
    osdp.Capability.OutputControl: "output control",
    osdp.Capability.ContactStatusMonitoring: "input monitoring",
    osdp.Capability.LEDControl: "LED control",
    osdp.Capability.AudibleControl: "buzzer",
    osdp.Capability.TextOutput: "text display",
    osdp.Capability.CommunicationSecurity: "secure channel",
}


@dataclass(frozen=True)
class LinkState:
    """The link to the peripheral as the supervisor last published it.

    Attributes:
        up: online, secure channel up, bytes still coming in.
        outages: number of times the link went down since the control panel was created.
        since: ``time.monotonic()`` of the last change of ``up``.
    """

    up: bool
    outages: int
    since: float


@dataclass(frozen=True)
class PeripheralIdentity:
    """What the peripheral reported in ``osdp_PDID`` (OSDP 2.2 §7.4)."""

    vendor_code: int
    model: int
    version: int
    serial_number: int
    firmware_version: int


def wait_until(cond: threading.Condition, predicate: Callable[[], bool], timeout: float) -> bool:
    """Wait on ``cond`` (held by the caller) until ``predicate()``; ``False`` after ``timeout``.

    Wakes at least every 50 ms to look again, notified or not.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        cond.wait(min(remaining, 0.05))
    return True


def _text_command(text: str, temporary_s: int = 0) -> dict[str, Any]:
    """The ``osdp_TEXT`` command showing ``text``; for ``temporary_s`` seconds when non-zero.

    Raises:
        PeripheralError: the text does not fit in one command.
    """
    if len(text.encode()) > TEXT_MAX_BYTES:
        raise PeripheralError(f"text longer than {TEXT_MAX_BYTES} bytes: {text!r}")
    control = TextControl.TEMPORARY if temporary_s else TextControl.PERMANENT
    return {
        "command": osdp.Command.Text,
        "reader": 0,
        "control_code": int(control),
        "temp_time": temporary_s,
        "offset_row": 1,
        "offset_col": 1,
        "data": text,
    }


class _ControlPanel(osdp.ControlPanel):
    """libosdp's ControlPanel with a faster refresh loop (the binding hard-codes 20 ms)."""

    def start(self) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        event, lock, ctx = self.event, self.lock, self.ctx

        def loop() -> None:
            while not event.is_set():
                with lock:
                    ctx.refresh()
                time.sleep(_REFRESH_S)

        self.thread = threading.Thread(name="osdp-cp", target=loop, daemon=True)
        self.thread.start()


class OSDPControlPanel:
    """Control panel for the single barrier controller on a gate's serial line.

    Args:
        port: serial device of the RS-485 adapter.
        scbk: secure channel base key (16 bytes) installed in the peripheral. Passed in, never read
            from a global.
        address: OSDP address of the peripheral.
        baudrate: line speed.
        silence_timeout: seconds without a byte from the peripheral before the link is down.
        reprobe_interval: seconds between reconnection attempts while the link is down.
        on_link_change: called with ``True``/``False`` when the link comes up or goes down (from the
            supervisor thread).
        on_input_change: called with ``(Input, active)`` on each input status report.
        on_tamper_change: called with the tamper state on each local status report.
    """

    def __init__(
        self,
        port: str,
        scbk: bytes,
        *,
        address: int = DEFAULT_ADDRESS,
        baudrate: int = 115200,
        silence_timeout: float = 1.0,
        reprobe_interval: float = 1.0,
        on_link_change: Callable[[bool], None] | None = None,
        on_input_change: Callable[[Input, bool], None] | None = None,
        on_tamper_change: Callable[[bool], None] | None = None,
    ) -> None:
        if len(scbk) != 16:
            raise PeripheralError("the SCBK is 16 bytes")
        self.address = address
        self.silence_timeout = silence_timeout
        self.reprobe_interval = reprobe_interval
        self.on_link_change = on_link_change
        self.on_input_change = on_input_change
        self.on_tamper_change = on_tamper_change
        self.channel = SerialChannel(port, baudrate)
        self._cp = _ControlPanel(
            [
                osdp.PDInfo(
                    address,
                    self.channel,
                    scbk=scbk,
                    flags=[osdp.LibFlag.EnforceSecure, osdp.LibFlag.EnableNotification],
                    name="gate",
                )
            ],
            log_level=osdp.LogLevel.Error,
            event_handler=self._on_event,
        )
        self._cond = threading.Condition()
        self._completions: dict[int, list[bool]] = {}
        self._mfg_replies: queue.Queue[bytes] = queue.Queue()
        self.inputs: dict[Input, bool] = dict.fromkeys(Input, False)
        self.tamper = False
        self._libosdp_online = False
        # The link state, changed together under ``_cond``: whoever reads it (the gate's health,
        # a test) sees the state the supervisor published, never half of a transition.
        self._link_up = False
        self._outages = 0
        self._link_since = time.monotonic()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._firmware: tuple[bytes, int] = (b"", 0)
        self._file_ops_registered = False
        self._probe_lock = threading.Lock()
        self.reprobes = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling the peripheral and supervising the link."""
        self._cp.start()
        self._stop.clear()
        self._supervisor = threading.Thread(name="osdp-link", target=self._supervise, daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop polling and close the serial port."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=2)
            self._supervisor = None
        if self._cp.thread is not None:
            self._cp.stop()
        self.channel.close()

    @property
    def link_up(self) -> bool:
        """Online with the secure channel up, and bytes still coming in."""
        return self._link_up

    def link_state(self) -> LinkState:
        """The link's state, its number of outages and when it last changed, read together."""
        with self._cond:
            return LinkState(self._link_up, self._outages, self._link_since)

    @property
    def secure_channel_active(self) -> bool:
        """Whether libosdp has a secure channel session with the peripheral."""
        return bool(self._cp.is_sc_active(self.address))

    def wait_link(self, up: bool = True, timeout: float = 5.0) -> bool:
        """Wait until the link is up (or down), at most ``timeout`` seconds."""
        with self._cond:
            return wait_until(self._cond, lambda: self._link_up == up, timeout)

    def reprobe(self) -> None:
        """Restart the exchange from scratch (identification, capabilities, secure channel).

        libosdp's own retry after going offline waits five minutes; a gate cannot.
        """
        with self._probe_lock:
            self.reprobes += 1
            self._disable()
            self._cp.enable_pd(self.address)

    def _disable(self) -> None:
        self._cp.disable_pd(self.address)
        deadline = time.monotonic() + 0.5
        while self._cp.is_pd_enabled(self.address) and time.monotonic() < deadline:
            time.sleep(0.005)

    # --- identification ----------------------------------------------------------------------

    def identify(self) -> PeripheralIdentity:
        """The peripheral's identification report (``osdp_PDID``), as read at connection."""
        self._require_link()
        pd_id = self._cp.get_pd_id(self.address)
        return PeripheralIdentity(
            vendor_code=pd_id.vendor_code,
            model=pd_id.model,
            version=pd_id.version,
            serial_number=pd_id.serial_number,
            firmware_version=pd_id.firmware_version,
        )

    def capability(self, function_code: int) -> tuple[int, int]:
        """``(compliance level, number of items)`` the peripheral reported for a function code."""
        self._require_link()
        compliance, items = self._cp.check_capability(self.address, function_code)
        return int(compliance), int(items)

    def missing_capabilities(self) -> list[str]:
        """Names of the capabilities the gate needs and the peripheral does not report."""
        return [name for code, name in GATE_CAPABILITIES.items() if self.capability(code)[0] == 0]

    # --- commands ----------------------------------------------------------------------------

    def output(
        self,
        control: OutputControl,
        *,
        output: Output = Output.BARRIER,
        timer_100ms: int = 0,
        confirm_timeout: float | None = 2.0,
    ) -> None:
        """``osdp_OUT``: drive an output (the barrier relay)."""
        self.submit(
            {
                "command": osdp.Command.Output,
                "output_no": int(output),
                "control_code": int(control),
                "timer_count": min(timer_100ms, 255),
            },
            confirm_timeout,
        )

    def led(
        self,
        colour: int,
        *,
        temporary_100ms: int = 0,
        confirm_timeout: float | None = 2.0,
    ) -> None:
        """``osdp_LED``: steady colour; temporary for ``temporary_100ms`` when non-zero."""
        command: dict[str, Any] = {
            "command": osdp.Command.LED,
            "reader": 0,
            "led_number": 0,
            "on_color": colour,
            "off_color": osdp.CommandLEDColor.Black,
            "on_count": 1,
            "off_count": 0,
            "temporary": temporary_100ms > 0,
        }
        if temporary_100ms > 0:
            command.update(control_code=LEDControl.SET_TEMPORARY, timer_count=temporary_100ms)
        else:
            command.update(control_code=LEDControl.SET)
        self.submit(command, confirm_timeout)

    def buzzer(
        self,
        *,
        on_100ms: int = 2,
        off_100ms: int = 1,
        repeat: int = 2,
        confirm_timeout: float | None = 2.0,
    ) -> None:
        """``osdp_BUZ``: sound the default tone ``repeat`` times."""
        self.submit(
            {
                "command": osdp.Command.Buzzer,
                "reader": 0,
                "control_code": BuzzerTone.DEFAULT,
                "on_count": on_100ms,
                "off_count": off_100ms,
                "rep_count": repeat,
            },
            confirm_timeout,
        )

    def text(self, text: str, *, temporary_s: int = 0, confirm_timeout: float | None = 2.0) -> None:
        """``osdp_TEXT``: show a line; for ``temporary_s`` seconds when non-zero.

        Raises:
            PeripheralError: the text does not fit in one command.
        """
        self.submit(_text_command(text, temporary_s), confirm_timeout)

    def queue_text(self, text: str) -> None:
        """``osdp_TEXT``, permanent, queued even while the link is down; nothing waits for it.

        libosdp keeps queuing commands until it declares the peripheral offline, and they go out
        if the line comes back. The binding may raise on a dead line: callers treat this as best
        effort.

        Raises:
            PeripheralError: the text does not fit in one command.
        """
        self._cp.submit_command(self.address, _text_command(text))

    def submit(self, command: dict[str, Any], confirm_timeout: float | None = 2.0) -> None:
        """Queue a command; with a timeout, wait until the peripheral acknowledged it.

        Raises:
            PeripheralOfflineError: the link is down, or no acknowledgement came in time
                (``may_have_reached`` tells whether it was queued).
            PeripheralError: the peripheral refused the command (NAK).
        """
        self._require_link()
        code = command["command"]
        with self._cond:
            before = len(self._completions.get(code, []))
        if not self._cp.submit_command(self.address, command):
            raise PeripheralOfflineError(f"command {code} not accepted by libosdp")
        if confirm_timeout is None:
            return
        with self._cond:
            answered = wait_until(
                self._cond,
                lambda: len(self._completions.get(code, [])) > before,
                confirm_timeout,
            )
            if not answered:
                raise PeripheralOfflineError(
                    f"no answer to command {code} in {confirm_timeout} s",
                    may_have_reached=True,
                )
            ok = self._completions[code][before]
        if not ok:
            raise PeripheralError(f"peripheral refused command {code}", may_have_reached=True)

    # --- manufacturer exchanges and firmware -------------------------------------------------

    def mfg(self, sub_command: MfgCommand, payload: bytes = b"", timeout: float = 2.0) -> bytes:
        """One of our ``osdp_MFG`` exchanges; returns the reply payload (after the echoed code).

        Raises:
            PeripheralOfflineError: no reply in time.
        """
        while not self._mfg_replies.empty():  # answers to earlier, abandoned questions
            self._mfg_replies.get_nowait()
        self.submit(
            {
                "command": osdp.Command.Manufacturer,
                "vendor_code": VENDOR_CODE,
                "mfg_command": int(sub_command),
                "data": bytes([sub_command]) + payload,
            },
            timeout,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._mfg_replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise PeripheralOfflineError(f"no reply to MFG {sub_command.name}") from None
            if reply[:1] == bytes([sub_command]):
                return reply[1:]

    def firmware_status(self) -> tuple[UpdateResult, int]:
        """``(result of the last update, running firmware version)`` as the peripheral reports."""
        reply = self.mfg(MfgCommand.FIRMWARE_STATUS)
        (version,) = struct.unpack_from("<I", reply, 1)
        return UpdateResult(reply[0]), version

    def update_firmware(
        self,
        image: bytes,
        *,
        timeout: float = 60.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Send a signed firmware image, resuming where an earlier cut transfer stopped.

        Args:
            image: the signed image, as built by the release tool.
            timeout: bound on the whole transfer.
            progress: called with ``(bytes sent, total)`` now and then.

        Returns:
            The firmware version now running on the peripheral.

        Raises:
            FirmwareUpdateError: the transfer did not finish in time (call again, possibly from
                a new control panel after a restart, to resume from the staged prefix), or the
                peripheral refused the image (``result`` says why; it keeps running the old one).
        """
        tag = image_tag(image)
        ongoing = self._cp.get_file_tx_status(self.address) if self._file_ops_registered else None
        if ongoing and ongoing["offset"] < ongoing["size"]:
            raise FirmwareUpdateError("a firmware transfer is still in progress")
        staged = self.mfg(MfgCommand.STAGING_STATUS)
        staged_tag = staged[:IMAGE_TAG_LENGTH]
        (staged_length,) = struct.unpack_from("<I", staged, IMAGE_TAG_LENGTH)
        offset = staged_length if staged_tag == tag and 0 < staged_length < len(image) else 0
        begin = self.mfg(MfgCommand.BEGIN_TRANSFER, tag + struct.pack("<II", len(image), offset))
        if begin[0] != 1:
            raise FirmwareUpdateError(f"peripheral refused to start a transfer at {offset}")
        if offset:
            log.info("resuming firmware transfer at %d/%d bytes", offset, len(image))
        self._firmware = (image, offset)
        if not self._file_ops_registered:
            # Registered once: registering again resets libosdp's transfer state, and libosdp
            # aborts the process (BUG_ON) if that happens under a file command being retried.
            self._cp.register_file_ops(self.address, self._file_ops())
            self._file_ops_registered = True
        # libosdp sends no completion notification for a file transfer: its progress is polled.
        self.submit(
            {"command": osdp.Command.FileTransfer, "id": FILE_ID_FIRMWARE, "flags": 0},
            confirm_timeout=None,
        )
        remaining = len(image) - offset
        lost_reported = False
        deadline = time.monotonic() + timeout
        while True:
            status = self._cp.get_file_tx_status(self.address)
            sent = int(status["offset"]) if status else 0
            if progress is not None:
                progress(offset + sent, len(image))
            if status and sent >= remaining:
                break
            if time.monotonic() > deadline:
                # The staged prefix stays in the peripheral: a later call resumes from it.
                raise FirmwareUpdateError(
                    f"transfer stopped at {offset + sent}/{len(image)} bytes after {timeout} s; "
                    "call again to resume"
                )
            if not self._link_up and not lost_reported:
                # libosdp keeps its transfer state across the outage and carries on from the
                # last acknowledged chunk once the supervisor has reconnected.
                lost_reported = True
                log.warning(
                    "link lost during firmware transfer at %d/%d bytes; waiting",
                    offset + sent,
                    len(image),
                )
            elif self._link_up:
                lost_reported = False
            time.sleep(0.02)
        result, version = self.firmware_status()
        while result is UpdateResult.IN_PROGRESS and time.monotonic() < deadline:
            time.sleep(0.05)
            result, version = self.firmware_status()
        if result is not UpdateResult.INSTALLED:
            raise FirmwareUpdateError(
                f"peripheral refused the image ({result.name}); still running {version:#x}",
                result=result,
            )
        log.info("firmware %#x installed on the gate peripheral", version)
        return version

    def _file_ops(self) -> dict[str, Callable[..., Any]]:
        def open_(file_id: int, size: int) -> int:
            image, offset = self._firmware
            return len(image) - offset

        def read(size: int, offset: int) -> bytes:
            image, base = self._firmware
            return image[base + offset : base + offset + size]

        def write(data: bytes, offset: int) -> int:
            return -1

        def close(file_id: int) -> None:
            return None

        return {"open": open_, "read": read, "write": write, "close": close}

    # --- events (libosdp refresh thread, its lock held: never call back into libosdp) ---------

    def _on_event(self, pd: int, event: dict[str, Any]) -> int:
        kind = event["event"]
        if kind == osdp.Event.Notification:
            self._on_notification(event)
        elif kind == osdp.Event.Status:
            report: bytes = event.get("report", b"")
            if event["type"] == osdp.StatusReportType.Input:
                for number in Input:
                    if number < len(report):
                        self._set_input(number, bool(report[number]))
            elif event["type"] == osdp.StatusReportType.Local and len(report) > LocalStatus.TAMPER:
                tamper = bool(report[LocalStatus.TAMPER])
                if tamper != self.tamper:
                    log.warning("gate peripheral tamper switch %s", "OPEN" if tamper else "closed")
                self.tamper = tamper
                if self.on_tamper_change is not None:
                    self.on_tamper_change(tamper)
        elif kind == osdp.Event.ManufacturerReply and event.get("vendor_code") == VENDOR_CODE:
            self._mfg_replies.put(bytes(event.get("data", b"")))
        return 0

    def _on_notification(self, event: dict[str, Any]) -> None:
        with self._cond:
            if event["type"] == _NOTIFY_COMMAND:
                self._completions.setdefault(event["arg0"], []).append(bool(event["arg1"]))
            elif event["type"] == _NOTIFY_PD:
                self._libosdp_online = bool(event["arg0"])
            self._cond.notify_all()

    def _set_input(self, number: Input, active: bool) -> None:
        with self._cond:
            self.inputs[number] = active
            self._cond.notify_all()
        if self.on_input_change is not None:
            self.on_input_change(number, active)

    # --- link supervision ---------------------------------------------------------------------

    def _supervise(self) -> None:
        last_probe = time.monotonic()
        while not self._stop.wait(0.02):
            healthy = (
                self._libosdp_online
                and self.secure_channel_active
                and self.channel.seconds_since_rx() < self.silence_timeout
            )
            if healthy != self._link_up:
                with self._cond:
                    self._link_up = healthy
                    self._link_since = time.monotonic()
                    if not healthy:
                        self._outages += 1
                    self._cond.notify_all()
                if healthy:
                    log.info("gate peripheral online, secure channel up")
                else:
                    log.error("gate peripheral not answering on %s", self.channel.port)
                if self.on_link_change is not None:
                    try:
                        self.on_link_change(healthy)
                    except Exception:
                        log.exception("link change handler failed")
                last_probe = time.monotonic()
            if not healthy and time.monotonic() - last_probe >= self.reprobe_interval:
                last_probe = time.monotonic()
                log.info("re-probing the gate peripheral")
                self.reprobe()

    def _require_link(self) -> None:
        if not self._link_up:
            raise PeripheralOfflineError("gate peripheral offline")
