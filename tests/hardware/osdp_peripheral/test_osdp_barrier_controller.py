"""The emulated barrier controller, with libosdp's own ControlPanel as the peer.

The host side is a plain ``osdp.ControlPanel`` on a pyserial channel opened on the pty slave, so
these tests exercise the peripheral without the project's control panel.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import osdp
import pytest
import serial
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.osdp_tables import (
    DEFAULT_ADDRESS,
    VENDOR_CODE,
    BuzzerTone,
    Input,
    LEDControl,
    Output,
    OutputControl,
    TextControl,
)
from hardware.osdp_peripheral import OUT_OF_SERVICE_TEXT, BarrierController

pytestmark = pytest.mark.integration
ADDR = DEFAULT_ADDRESS


class PySerialChannel(osdp.Channel):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.port = serial.Serial(path, 115200, timeout=0)

    def read(self, max_bytes: int) -> bytes:
        data: bytes = self.port.read(max_bytes)
        return data

    def write(self, buf: bytes) -> int:
        return int(self.port.write(buf) or 0)

    def flush(self) -> None:
        pass


class Peer:
    """A libosdp control panel and what it received."""

    def __init__(self, path: str, scbk: bytes) -> None:
        self.events: list[dict[str, Any]] = []
        self.channel = PySerialChannel(path)
        info = osdp.PDInfo(ADDR, self.channel, scbk=scbk, flags=[osdp.LibFlag.EnforceSecure])
        self.cp = osdp.ControlPanel(
            [info], log_level=osdp.LogLevel.Emergency, event_handler=self._on_event
        )
        self.cp.start()

    def _on_event(self, pd: int, event: dict[str, Any]) -> int:
        self.events.append(event)
        return 0

    def wait_secure(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.cp.is_sc_active(ADDR):
                return True
            time.sleep(0.02)
        return False

    def wait_event(self, match: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if all(event.get(k) == v for k, v in match.items()):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no event {match} in {self.events}")

    def close(self) -> None:
        self.cp.stop()
        self.channel.port.close()


@pytest.fixture
def scbk() -> bytes:
    return os.urandom(16)


@pytest.fixture
def controller(scbk: bytes) -> Iterator[BarrierController]:
    pd = BarrierController(
        scbk, firmware_key=Ed25519PrivateKey.generate().public_key(), host_timeout=0.5
    )
    pd.start()
    yield pd
    pd.close()


@pytest.fixture
def peer(controller: BarrierController, scbk: bytes) -> Iterator[Peer]:
    p = Peer(controller.device_path, scbk)
    assert p.wait_secure(), "secure channel not established"
    yield p
    p.close()


def test_secure_channel_comes_up_on_both_sides_with_the_shared_key(
    controller: BarrierController, peer: Peer
) -> None:
    assert peer.cp.is_sc_active(ADDR)
    assert controller.wait_for(lambda s: True, 0) and controller.secure_channel_active


def test_a_wrong_key_gets_no_secure_channel(controller: BarrierController) -> None:
    intruder = Peer(controller.device_path, os.urandom(16))
    try:
        assert not intruder.wait_secure(timeout=1.5)
        assert not controller.secure_channel_active
    finally:
        intruder.close()


def test_identification_and_capabilities(controller: BarrierController, peer: Peer) -> None:
    pd_id = peer.cp.get_pd_id(ADDR)
    assert (pd_id.vendor_code, pd_id.firmware_version) == (VENDOR_CODE, 0x010000)
    assert peer.cp.check_capability(ADDR, osdp.Capability.OutputControl) == (1, len(Output))
    assert peer.cp.check_capability(ADDR, osdp.Capability.TextOutput)[0] == 1


def test_timed_output_opens_the_barrier_then_closes_it(
    controller: BarrierController, peer: Peer
) -> None:
    command = {
        "command": osdp.Command.Output,
        "output_no": Output.BARRIER,
        "control_code": OutputControl.ON_TIMED,
        "timer_count": 3,
    }
    assert peer.cp.submit_command(ADDR, command)
    assert controller.wait_for(lambda s: s.barrier_open, 2)
    assert controller.wait_for(lambda s: not s.barrier_open, 2)  # 300 ms timer ran out
    assert controller.snapshot().openings == 1


def test_led_buzzer_and_text_commands(controller: BarrierController, peer: Peer) -> None:
    peer.cp.submit_command(
        ADDR,
        {
            "command": osdp.Command.LED,
            "reader": 0,
            "led_number": 0,
            "control_code": LEDControl.SET,
            "on_color": osdp.CommandLEDColor.Red,
            "off_color": osdp.CommandLEDColor.Black,
            "on_count": 1,
            "off_count": 0,
            "temporary": False,
        },
    )
    peer.cp.submit_command(
        ADDR,
        {
            "command": osdp.Command.Buzzer,
            "reader": 0,
            "control_code": BuzzerTone.DEFAULT,
            "on_count": 1,
            "off_count": 1,
            "rep_count": 1,
        },
    )
    peer.cp.submit_command(
        ADDR,
        {
            "command": osdp.Command.Text,
            "reader": 0,
            "control_code": TextControl.PERMANENT,
            "temp_time": 0,
            "offset_row": 1,
            "offset_col": 1,
            "data": "Carte refusée",
        },
    )
    assert controller.wait_for(
        lambda s: s.led == "red" and s.beeps == 1 and s.display == "Carte refusée", 3
    ), controller.snapshot()


def test_passage_sensor_and_tamper_reach_the_host_as_status_reports(
    controller: BarrierController, peer: Peer
) -> None:
    controller.set_passage_sensor(True)
    peer.wait_event(
        {"event": osdp.Event.Status, "type": osdp.StatusReportType.Input, "report": bytes([1])}
    )
    controller.set_tamper(True)
    peer.wait_event(
        {"event": osdp.Event.Status, "type": osdp.StatusReportType.Local, "report": bytes([1, 0])}
    )
    assert Input.PASSAGE_SENSOR == 0


def test_losing_the_host_fails_safe_closed(controller: BarrierController, peer: Peer) -> None:
    peer.cp.submit_command(
        ADDR,
        {
            "command": osdp.Command.Output,
            "output_no": 0,
            "control_code": OutputControl.ON_ABORT_TIMED,
            "timer_count": 0,
        },
    )
    assert controller.wait_for(lambda s: s.barrier_open, 2)
    controller.channel.unplug()
    assert controller.wait_for(lambda s: s.host_lost, 3)
    state = controller.snapshot()
    assert not state.barrier_open
    assert state.display_shown == OUT_OF_SERVICE_TEXT
