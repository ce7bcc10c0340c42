"""Emulated barrier controller: the gate's OSDP peripheral, built on libosdp's peripheral mode.

Capability note: one output (barrier relay, timed or permanent), one input (passage sensor), a
tamper switch reported in the local status, one bi-colour LED, a buzzer, a one-line text display,
secure channel (AES-128, SCBK), CRC-16, file transfer of signed firmware images (with resume, see
:mod:`hardware.osdp_peripheral.firmware`). If the host stops polling for ``host_timeout`` seconds
the controller puts the barrier in its own fail-safe position (closed, or open when configured for
evacuation) and shows "Hors service", like a real barrier controller with a watchdog.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import osdp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
)
from hardware.osdp_peripheral.errors import FirmwareFormatError, PeripheralEmulatorError
from hardware.osdp_peripheral.firmware import FirmwareFlash
from hardware.osdp_peripheral.pty_link import PtyChannel, PtyPair

log = logging.getLogger(__name__)

#: Text the controller shows by itself when it loses the host.
OUT_OF_SERVICE_TEXT = "Hors service"

_TICK_S = 0.005  # refresh period: libosdp asks for at least one refresh every 50 ms
_COLOR_NAMES = {
    osdp.CommandLEDColor.Black: "off",
    osdp.CommandLEDColor.Red: "red",
    osdp.CommandLEDColor.Green: "green",
    osdp.CommandLEDColor.Amber: "amber",
    osdp.CommandLEDColor.Blue: "blue",
    osdp.CommandLEDColor.Magenta: "magenta",
    osdp.CommandLEDColor.Cyan: "cyan",
    osdp.CommandLEDColor.White: "white",
}


@dataclass
class GateHardwareState:
    """What a person standing at the gate would see and hear. Times are ``time.monotonic()``."""

    barrier_open: bool = False
    barrier_until: float | None = None  # end of a timed opening
    led: str = "off"  # permanent colour
    led_temporary: str | None = None
    led_until: float | None = None
    display: str = ""
    display_temporary: str | None = None
    display_until: float | None = None
    beeps: int = 0  # buzzer sequences sounded since start
    passage_sensor: bool = False
    tamper: bool = False
    host_lost: bool = False
    openings: int = 0  # times the barrier went from closed to open
    commands: list[dict[str, Any]] = field(default_factory=list)

    @property
    def led_shown(self) -> str:
        """The colour lit now (the temporary one while it runs)."""
        return self.led_temporary if self.led_temporary is not None else self.led

    @property
    def display_shown(self) -> str:
        """The text shown now (the temporary one while it runs)."""
        return self.display_temporary if self.display_temporary is not None else self.display


class _PeripheralDevice(osdp.PeripheralDevice):
    """libosdp's PeripheralDevice with our refresh loop (faster than its 20 ms, plus a tick)."""

    def start_with_tick(self, tick: Callable[[], None]) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()

        def loop() -> None:
            while not self.event.is_set():
                with self.lock:
                    self.ctx.refresh()
                tick()
                time.sleep(_TICK_S)

        self.thread = threading.Thread(name="osdp-pd", target=loop, daemon=True)
        self.thread.start()


class BarrierController:
    """The emulated barrier controller on its own pseudo-terminal.

    Args:
        scbk: secure channel base key (16 bytes) shared with the host.
        firmware_key: public key that firmware images must be signed with.
        firmware_version: version of the firmware running at start.
        address: OSDP address.
        serial_number: reported in the peripheral identification.
        fail_safe_open: barrier position when the host is lost: ``False`` closed, ``True`` open
            (evacuation configuration).
        host_timeout: seconds without a byte from the host before the controller fails safe.
    """

    def __init__(
        self,
        scbk: bytes,
        *,
        firmware_key: Ed25519PublicKey,
        firmware_version: int = 0x01_00_00,
        address: int = DEFAULT_ADDRESS,
        serial_number: int = 0x5EED_0001,
        fail_safe_open: bool = False,
        host_timeout: float = 2.0,
    ) -> None:
        if len(scbk) != 16:
            raise PeripheralEmulatorError("the SCBK is 16 bytes")
        self.address = address
        self._scbk = scbk
        self._serial_number = serial_number
        self.fail_safe_open = fail_safe_open
        self.host_timeout = host_timeout
        self.flash = FirmwareFlash(firmware_key, firmware_version)
        self.line = PtyPair()
        self.channel = PtyChannel(self.line)
        self.state = GateHardwareState()
        self._state_lock = threading.RLock()
        self._changed = threading.Condition(self._state_lock)
        self._pd: _PeripheralDevice | None = None
        self._last_host_rx = time.monotonic()
        self._host_rx_seen = 0
        self._reported_once = False

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def device_path(self) -> str:
        """Serial device the host opens (the pty slave)."""
        return self.line.slave_path

    def start(self) -> None:
        """Power on: start answering on the line."""
        if self._pd is not None:
            return
        pd_info = osdp.PDInfo(
            self.address,
            self.channel,
            scbk=self._scbk,
            flags=[osdp.LibFlag.EnforceSecure],
            id=osdp.PdId(1, 1, VENDOR_CODE, self._serial_number, self.flash.running_version),
            name="barrier",
        )
        capabilities = osdp.PDCapabilities(
            [
                (osdp.Capability.OutputControl, 1, len(Output)),
                (osdp.Capability.ContactStatusMonitoring, 1, len(Input)),
                (osdp.Capability.LEDControl, 1, 1),
                (osdp.Capability.AudibleControl, 1, 1),
                (osdp.Capability.TextOutput, 1, 1),
                (osdp.Capability.CheckCharacter, 1, 0),
                (osdp.Capability.CommunicationSecurity, 1, 1),
            ]
        )
        pd = _PeripheralDevice(
            pd_info,
            capabilities,
            log_level=osdp.LogLevel.Error,
            command_handler=self._on_command,
        )
        pd.ctx.register_file_ops(0, self._file_ops())
        self._last_host_rx = time.monotonic()
        self._reported_once = False
        self._pd = pd
        pd.start_with_tick(self._tick)
        log.info("barrier controller on %s, address %d", self.device_path, self.address)

    def stop(self) -> None:
        """Power off (the pty stays, so the host sees silence, not a vanished device)."""
        pd, self._pd = self._pd, None
        if pd is not None:
            pd.teardown()

    def restart(self) -> None:
        """Power cycle: a fresh libosdp context, reporting the firmware version now running."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and release the pseudo-terminal."""
        self.stop()
        self.line.close()

    def __enter__(self) -> BarrierController:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the physical world ------------------------------------------------------------------

    def set_passage_sensor(self, active: bool) -> None:
        """Someone enters (``True``) or leaves (``False``) the light curtain."""
        with self._changed:
            self.state.passage_sensor = active
            self._changed.notify_all()
        self._report_inputs()

    def simulate_passage(self) -> None:
        """A passenger walks through: the sensor goes active, then clear."""
        self.set_passage_sensor(True)
        time.sleep(0.05)
        self.set_passage_sensor(False)

    def set_tamper(self, open_: bool) -> None:
        """The cabinet door is opened (``True``) or closed."""
        with self._changed:
            self.state.tamper = open_
            self._changed.notify_all()
        self._report_local_status()

    def snapshot(self) -> GateHardwareState:
        """A copy of the current state, for assertions and the demo."""
        with self._state_lock:
            copy = GateHardwareState(
                **{k: v for k, v in vars(self.state).items() if k != "commands"}
            )
            copy.commands = list(self.state.commands)
            return copy

    def wait_for(self, predicate: Callable[[GateHardwareState], bool], timeout: float) -> bool:
        """Wait until ``predicate(state)`` holds, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.state):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
            return True

    @property
    def secure_channel_active(self) -> bool:
        """Whether libosdp reports an active secure channel with the host."""
        return self._pd is not None and bool(self._pd.ctx.is_sc_active())

    # --- OSDP commands -----------------------------------------------------------------------

    def _on_command(self, command: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """libosdp command callback (runs in the refresh thread, libosdp lock held)."""
        handlers: dict[int, Callable[[dict[str, Any]], int]] = {
            osdp.Command.Output: self._cmd_output,
            osdp.Command.LED: self._cmd_led,
            osdp.Command.Buzzer: self._cmd_buzzer,
            osdp.Command.Text: self._cmd_text,
            osdp.Command.Manufacturer: self._cmd_mfg,
            osdp.Command.FileTransfer: self._cmd_file_tx,
        }
        with self._changed:
            self.state.commands.append(dict(command))
            handler = handlers.get(command["command"])
            rc = handler(command) if handler is not None else 0
            self._changed.notify_all()
        return rc, None

    def _cmd_output(self, command: dict[str, Any]) -> int:
        if command["output_no"] != Output.BARRIER:
            log.warning("no output %d", command["output_no"])
            return -1
        code = command["control_code"]
        now = time.monotonic()
        if code in (OutputControl.OFF_ABORT_TIMED, OutputControl.OFF_AFTER_TIMED):
            self._set_barrier(False, None)
        elif code in (OutputControl.ON_ABORT_TIMED, OutputControl.ON_AFTER_TIMED):
            self._set_barrier(True, None)
        elif code == OutputControl.ON_TIMED:
            self._set_barrier(True, now + command["timer_count"] / 10)
        elif code == OutputControl.OFF_TIMED:
            self._set_barrier(False, now + command["timer_count"] / 10)
        return 0

    def _set_barrier(self, open_: bool, until: float | None) -> None:
        if open_ and not self.state.barrier_open:
            self.state.openings += 1
        self.state.barrier_open = open_
        self.state.barrier_until = until
        log.info(
            "barrier %s%s",
            "open" if open_ else "closed",
            f" for {until - time.monotonic():.1f} s" if until else "",
        )

    def _cmd_led(self, command: dict[str, Any]) -> int:
        colour = _COLOR_NAMES.get(command["on_color"], "off")
        if command.get("temporary"):
            if command["control_code"] == LEDControl.SET_TEMPORARY:
                self.state.led_temporary = colour
                self.state.led_until = time.monotonic() + command.get("timer_count", 0) / 10
            elif command["control_code"] == LEDControl.SET:  # cancel the temporary state
                self.state.led_temporary = None
                self.state.led_until = None
        elif command["control_code"] == LEDControl.SET:
            self.state.led = colour
        return 0

    def _cmd_buzzer(self, command: dict[str, Any]) -> int:
        if command["control_code"] == BuzzerTone.DEFAULT:
            self.state.beeps += 1
            log.info("buzzer: %d beep(s)", max(1, command["rep_count"]))
        return 0

    def _cmd_text(self, command: dict[str, Any]) -> int:
        text = command["data"]
        if command["control_code"] in (TextControl.TEMPORARY, TextControl.TEMPORARY_WRAP):
            self.state.display_temporary = text
            self.state.display_until = time.monotonic() + command["temp_time"]
        else:
            self.state.display = text
            self.state.display_temporary = None
            self.state.display_until = None
        log.info("display: %s", text)
        return 0

    def _cmd_file_tx(self, command: dict[str, Any]) -> int:
        # A new transfer is starting; only firmware files are accepted.
        return 0 if command["id"] == FILE_ID_FIRMWARE else -1

    def _cmd_mfg(self, command: dict[str, Any]) -> int:
        data: bytes = command["data"]
        if command["vendor_code"] != VENDOR_CODE or not data:
            return -1
        sub = data[0]
        if sub == MfgCommand.STAGING_STATUS:
            reply = self.flash.staged_tag + struct.pack("<I", self.flash.staged_length)
        elif sub == MfgCommand.BEGIN_TRANSFER and len(data) == 1 + IMAGE_TAG_LENGTH + 8:
            tag = data[1 : 1 + IMAGE_TAG_LENGTH]
            total, offset = struct.unpack_from("<II", data, 1 + IMAGE_TAG_LENGTH)
            try:
                self.flash.begin(tag, total, offset)
                accepted = 1
            except FirmwareFormatError as exc:
                log.warning("firmware transfer refused: %s", exc)
                accepted = 0
            # Forget any transfer libosdp still believes in progress (the link was cut mid-way):
            # registering the file ops again resets its file-transfer state.
            if self._pd is not None:
                self._pd.ctx.register_file_ops(0, self._file_ops())
            reply = bytes([accepted]) + struct.pack("<I", self.flash.staged_length)
        elif sub == MfgCommand.FIRMWARE_STATUS:
            reply = bytes([self.flash.last_result]) + struct.pack("<I", self.flash.running_version)
        else:
            return -1
        # The answer travels as an osdp_MFGREP in the reply to a following poll.
        if self._pd is not None:
            self._pd.ctx.submit_event(
                {
                    "event": osdp.Event.ManufacturerReply,
                    "vendor_code": VENDOR_CODE,
                    "mfg_command": sub,
                    "data": bytes([sub]) + reply,
                }
            )
        return 0

    # --- firmware file transfer (libosdp file ops; raising refuses) ---------------------------

    def _file_ops(self) -> dict[str, Callable[..., Any]]:
        def open_(file_id: int, size: int) -> int:
            if file_id != FILE_ID_FIRMWARE:
                raise FirmwareFormatError(f"unknown file id {file_id}")
            self.flash.open_session(size)
            return 0

        def read(size: int, offset: int) -> bytes:
            return b""

        def write(data: bytes, offset: int) -> int:
            return self.flash.write(data, offset)

        def close(file_id: int) -> None:
            self.flash.close_session()
            with self._changed:
                self._changed.notify_all()

        return {"open": open_, "read": read, "write": write, "close": close}

    # --- events towards the host -------------------------------------------------------------

    def _submit(self, event: dict[str, Any]) -> None:
        pd = self._pd
        if pd is not None:
            pd.submit_event(event)

    def _report_inputs(self) -> None:
        report = bytes([int(self.state.passage_sensor)])
        self._submit(
            {"event": osdp.Event.Status, "type": osdp.StatusReportType.Input, "report": report}
        )

    def _report_local_status(self) -> None:
        report = bytearray(len(LocalStatus))
        report[LocalStatus.TAMPER] = int(self.state.tamper)
        report[LocalStatus.POWER] = 0
        self._submit(
            {
                "event": osdp.Event.Status,
                "type": osdp.StatusReportType.Local,
                "report": bytes(report),
            }
        )

    # --- periodic work -----------------------------------------------------------------------

    def _tick(self) -> None:
        """Expire timed outputs and texts; fail safe when the host is gone."""
        now = time.monotonic()
        received = self.channel.bytes_received
        with self._changed:
            st = self.state
            changed = False
            if st.barrier_until is not None and now >= st.barrier_until:
                self._set_barrier(not st.barrier_open, None)
                changed = True
            if st.led_until is not None and now >= st.led_until:
                st.led_temporary, st.led_until = None, None
                changed = True
            if st.display_until is not None and now >= st.display_until:
                st.display_temporary, st.display_until = None, None
                changed = True
            if received != self._host_rx_seen:
                self._host_rx_seen = received
                self._last_host_rx = now
                if st.host_lost:
                    st.host_lost = False
                    changed = True
                    log.info("host is polling again")
            elif not st.host_lost and now - self._last_host_rx > self.host_timeout:
                st.host_lost = True
                self._set_barrier(self.fail_safe_open, None)
                st.display, st.display_temporary, st.display_until = OUT_OF_SERVICE_TEXT, None, None
                st.led, st.led_temporary, st.led_until = "red", None, None
                changed = True
                log.error(
                    "host silent for %.1f s: barrier fails %s",
                    self.host_timeout,
                    "open" if self.fail_safe_open else "closed",
                )
            if changed:
                self._changed.notify_all()
        if not self._reported_once and self.secure_channel_active:
            # Tell a (re)connected host where the inputs stand.
            self._reported_once = True
            self._report_inputs()
            self._report_local_status()
        elif self._reported_once and not self.secure_channel_active:
            self._reported_once = False
