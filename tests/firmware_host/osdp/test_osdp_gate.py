"""The gate over OSDP: our control panel (pyserial on the pty slave) against the emulated barrier
controller (libosdp peripheral mode on the pty master)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.osdp_tables import UpdateResult
from firmware_host.osdp import (
    FirmwareUpdateError,
    GateText,
    OSDPControlPanel,
    OSDPGatePeripheral,
    PeripheralError,
    PeripheralOfflineError,
    SafeState,
)
from hardware.osdp_peripheral import BarrierController, LineFault, sign_image

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    controller: BarrierController
    cp: OSDPControlPanel
    gate: OSDPGatePeripheral
    signing_key: Ed25519PrivateKey


def make_rig(*, fail_safe_open: bool = False, safe_state: SafeState = SafeState.CLOSED) -> Rig:
    scbk = os.urandom(16)
    signing_key = Ed25519PrivateKey.generate()
    controller = BarrierController(
        scbk,
        firmware_key=signing_key.public_key(),
        host_timeout=0.5,
        fail_safe_open=fail_safe_open,
    )
    controller.start()
    cp = OSDPControlPanel(controller.device_path, scbk, silence_timeout=0.4, reprobe_interval=0.4)
    gate = OSDPGatePeripheral(cp, safe_state=safe_state, open_time_s=5)
    assert cp.wait_link(True, 5), "gate peripheral did not come online"
    # The gate restores its idle position once online.
    assert controller.wait_for(lambda s: s.display == GateText.IDLE, 3)
    return Rig(controller, cp, gate, signing_key)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = make_rig()
    yield r
    r.gate.close()
    r.controller.close()


def test_secure_channel_identity_and_capabilities(rig: Rig) -> None:
    assert rig.cp.secure_channel_active and rig.controller.secure_channel_active
    identity = rig.cp.identify()
    assert identity.firmware_version == rig.controller.flash.running_version
    assert identity.serial_number == 0x5EED_0001
    assert rig.cp.missing_capabilities() == []


def test_valid_opens_until_the_passage_then_closes(rig: Rig) -> None:
    rig.gate.signal_valid()
    state = rig.controller.snapshot()
    assert state.barrier_open and state.led_shown == "green"
    assert state.display_shown == GateText.VALID
    rig.controller.simulate_passage()
    assert rig.gate.wait_passage(3) is True
    assert rig.controller.wait_for(lambda s: not s.barrier_open, 2)


def test_no_passage_closes_at_the_timeout(rig: Rig) -> None:
    rig.gate.signal_valid()
    assert rig.gate.wait_passage(0.3) is False
    assert rig.controller.wait_for(lambda s: not s.barrier_open, 2)


def test_refusal_is_red_light_buzzer_and_text_barrier_closed(rig: Rig) -> None:
    rig.gate.signal_refused()
    state = rig.controller.snapshot()
    assert (state.led_shown, state.beeps, state.display_shown) == ("red", 1, GateText.REFUSED)
    assert state.openings == 0 and not state.barrier_open


def test_garbled_reply_drops_the_link_which_recovers_by_itself(rig: Rig) -> None:
    rig.controller.channel.inject_fault(LineFault.GARBLE, frames=1)
    # libosdp treats a reply with a bad CRC as a broken link: the command fails, and the
    # peripheral had executed it (the damage was on the way back).
    with pytest.raises(PeripheralError) as err:
        rig.gate.signal_refused()
    assert err.value.may_have_reached
    assert rig.controller.channel.faults_applied == 1
    assert wait_until(lambda: rig.gate.health().outages == 1, 3)
    assert rig.cp.wait_link(True, 5)
    rig.gate.signal_refused()
    assert rig.controller.snapshot().display_shown == GateText.REFUSED


def test_truncated_reply_is_recovered(rig: Rig) -> None:
    rig.controller.channel.inject_fault(LineFault.TRUNCATE, frames=1)
    with contextlib.suppress(PeripheralError):  # depends on whether libosdp retried in time
        rig.gate.signal_refused()
    assert rig.controller.channel.faults_applied == 1
    assert wait_until(lambda: rig.cp.link_up, 5)
    rig.gate.signal_refused()
    assert rig.controller.snapshot().display_shown == GateText.REFUSED


def test_noise_on_the_line_does_not_stop_the_gate(rig: Rig) -> None:
    rig.controller.line.inject_towards_host(os.urandom(40) + b"\x53\x65\x08\x00")
    # The noise may cost the current exchange (and the link, briefly); the gate comes back.
    deadline = time.monotonic() + 5
    while True:
        try:
            rig.gate.signal_valid()
            break
        except PeripheralError:
            assert time.monotonic() < deadline, "gate did not recover from line noise"
            rig.cp.wait_link(True, 1)
    assert rig.controller.snapshot().barrier_open


def test_unplugged_fails_safe_then_recovers_by_itself(rig: Rig) -> None:
    rig.gate.signal_valid()
    rig.controller.channel.unplug()
    assert rig.cp.wait_link(False, 3)
    assert not rig.gate.online and rig.gate.health().outages == 1
    with pytest.raises(PeripheralOfflineError):
        rig.gate.signal_valid()
    assert rig.controller.wait_for(lambda s: s.host_lost and not s.barrier_open, 3)

    rig.controller.channel.plug()
    assert rig.cp.wait_link(True, 5)
    assert rig.controller.wait_for(lambda s: s.display == GateText.IDLE and not s.host_lost, 3)
    rig.gate.signal_valid()
    assert rig.controller.snapshot().barrier_open


def test_gate_state_follows_the_link_with_no_window(rig: Rig) -> None:
    # The gate's own reaction to a link change (clearing its ready flag, showing the outage)
    # runs on the supervisor thread after the link state is published. Holding that reaction
    # back, as a busy machine can, must not leave a moment where the control panel has lost
    # the link while the gate still says it is online, or the reverse.
    reacted = threading.Event()
    release = threading.Event()
    gate_handler = rig.cp.on_link_change
    assert gate_handler is not None

    def held_back(up: bool) -> None:
        reacted.set()
        release.wait(10)
        gate_handler(up)

    rig.cp.on_link_change = held_back
    try:
        rig.controller.channel.unplug()
        assert rig.cp.wait_link(False, 3) and reacted.wait(3)
        health = rig.gate.health()
        assert (rig.gate.online, health.online, health.outages) == (False, False, 1)
        with pytest.raises(PeripheralOfflineError):
            rig.gate.signal_valid()
    finally:
        release.set()
    reacted.clear()
    rig.controller.channel.plug()
    assert rig.cp.wait_link(True, 5)
    assert rig.gate.health().online and rig.gate.health().outages == 1
    assert reacted.wait(3)


def test_peripheral_power_cycle_is_recovered(rig: Rig) -> None:
    rig.controller.stop()
    assert rig.cp.wait_link(False, 3)
    rig.controller.start()
    assert rig.cp.wait_link(True, 5)
    rig.gate.signal_refused()
    assert rig.controller.snapshot().beeps == 1


def test_evacuation_order_holds_the_barrier_open_across_an_outage() -> None:
    r = make_rig(fail_safe_open=True)
    try:
        r.gate.set_safe_state(SafeState.OPEN)
        assert r.controller.wait_for(
            lambda s: s.barrier_open and s.display == GateText.EVACUATION, 3
        )
        r.controller.channel.unplug()
        assert r.controller.wait_for(lambda s: s.host_lost, 3)
        assert r.controller.snapshot().barrier_open  # the controller fails open
        r.controller.channel.plug()
        assert r.cp.wait_link(True, 5)
        assert r.controller.wait_for(
            lambda s: s.barrier_open and s.display == GateText.EVACUATION, 3
        )
    finally:
        r.gate.close()
        r.controller.close()


def _cut_at_a_third(
    rig: Rig, cuts: list[int], replugs: list[threading.Timer] | None = None
) -> Callable[[int, int], None]:
    """A progress callback that pulls the cable once a third of the image is sent.

    With ``replugs``, the cable goes back one second after the cut (counted from the cut, not
    from the start of the transfer, which a busy machine can make slower than that).
    """

    def progress(sent: int, total: int) -> None:
        if not cuts and sent > total // 3:
            cuts.append(sent)
            rig.controller.channel.unplug()
            if replugs is not None:
                replugs.append(threading.Timer(1.0, rig.controller.channel.plug))
                replugs[-1].start()

    return progress


def test_firmware_update_cut_in_the_middle_resumes_when_the_line_returns(rig: Rig) -> None:
    image = sign_image(rig.signing_key, 0x020000, os.urandom(9000))
    cuts: list[int] = []
    replugs: list[threading.Timer] = []
    try:
        version = rig.cp.update_firmware(
            image, progress=_cut_at_a_third(rig, cuts, replugs), timeout=20
        )
    finally:
        for replug in replugs:
            replug.cancel()
    assert cuts and rig.gate.health().outages == 1  # the link really went down mid-transfer
    assert version == 0x020000
    flash = rig.controller.flash
    assert flash.installed_count == 1 and flash.session_offsets == [0]
    # Resumed, not restarted: the peripheral received well under two images' worth of data.
    assert flash.bytes_written < len(image) + cuts[0] // 2


def test_firmware_update_resumes_from_the_staged_prefix_after_a_host_restart(rig: Rig) -> None:
    image = sign_image(rig.signing_key, 0x030000, os.urandom(9000))
    cuts: list[int] = []
    with pytest.raises(FirmwareUpdateError, match="resume"):
        rig.cp.update_firmware(image, progress=_cut_at_a_third(rig, cuts), timeout=1.5)
    rig.gate.close()  # the host restarts: its libosdp state is gone
    staged = rig.controller.flash.staged_length
    assert 0 < staged < len(image)
    assert rig.controller.flash.running_version == 0x010000

    rig.controller.channel.plug()
    scbk = rig.controller._scbk
    cp = OSDPControlPanel(rig.controller.device_path, scbk, silence_timeout=0.4)
    rig.gate = OSDPGatePeripheral(cp)
    assert cp.wait_link(True, 5)
    assert cp.update_firmware(image, timeout=20) == 0x030000
    assert rig.controller.flash.session_offsets == [0, staged]
    assert rig.controller.flash.running_version == 0x030000


def test_bad_signature_is_refused_and_old_firmware_kept(rig: Rig) -> None:
    forged = sign_image(Ed25519PrivateKey.generate(), 0x666, os.urandom(2000))
    with pytest.raises(FirmwareUpdateError) as err:
        rig.cp.update_firmware(forged, timeout=20)
    assert err.value.result == UpdateResult.BAD_SIGNATURE
    assert rig.cp.firmware_status() == (UpdateResult.BAD_SIGNATURE, 0x010000)
    assert rig.controller.flash.running_version == 0x010000
    rig.gate.signal_refused()  # still running and answering
    assert rig.controller.snapshot().beeps == 1
