"""OSDP gate peripherals, host side: libosdp control panel over pyserial, and the gate interface."""

from firmware_host.osdp.channel import SerialChannel
from firmware_host.osdp.control_panel import OSDPControlPanel, PeripheralIdentity
from firmware_host.osdp.errors import (
    FirmwareUpdateError,
    PeripheralError,
    PeripheralOfflineError,
    SerialLinkError,
)
from firmware_host.osdp.gate import (
    ConsoleGatePeripheral,
    GateHealth,
    GatePeripheral,
    GateText,
    OSDPGatePeripheral,
    SafeState,
)

__all__ = [
    "ConsoleGatePeripheral",
    "FirmwareUpdateError",
    "GateHealth",
    "GatePeripheral",
    "GateText",
    "OSDPControlPanel",
    "OSDPGatePeripheral",
    "PeripheralError",
    "PeripheralIdentity",
    "PeripheralOfflineError",
    "SafeState",
    "SerialChannel",
    "SerialLinkError",
]
