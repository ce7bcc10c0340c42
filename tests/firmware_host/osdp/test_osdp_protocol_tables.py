"""The host's and the peripheral's copies of the gate's OSDP wire contract agree, and the console
gate peripheral behaves like the interface says."""

from __future__ import annotations

import io
from enum import IntEnum

import pytest

import firmware_host.osdp.protocol as host
import hardware.osdp_peripheral.protocol as peripheral
from firmware_host.osdp import ConsoleGatePeripheral, GateText, SafeState, SerialLinkError
from firmware_host.osdp.channel import SerialChannel


def _tables(module: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, IntEnum) and value is not IntEnum:
            out[name] = {m.name: int(m) for m in value}
        elif name.isupper():
            out[name] = value
    return out


def test_both_copies_of_the_wire_contract_are_identical() -> None:
    assert _tables(host) == _tables(peripheral)
    assert "MfgCommand" in _tables(host)


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
