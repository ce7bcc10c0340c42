"""The console gate peripheral behaves as the interface says; a missing port is a clean error."""

from __future__ import annotations

import io

import pytest

from firmware_host.osdp import ConsoleGatePeripheral, GateText, SafeState, SerialLinkError
from firmware_host.osdp.channel import SerialChannel


def test_console_gate_prints_french_messages() -> None:
    out = io.StringIO()
    gate = ConsoleGatePeripheral(out, assume_passage=False)
    gate.signal_valid()
    gate.signal_refused()
    assert gate.wait_passage(1) is False
    gate.set_safe_state(SafeState.OPEN)
    assert gate.online and gate.health().safe_state is SafeState.OPEN
    assert [kind for kind, _ in gate.signals] == ["valid", "refused", "passage", "safe-state"]
    assert GateText.VALID in out.getvalue() and GateText.REFUSED in out.getvalue()


def test_missing_serial_port_is_a_clean_error() -> None:
    with pytest.raises(SerialLinkError):
        SerialChannel("/dev/does-not-exist-osdp")
