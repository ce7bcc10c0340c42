"""Emulated OSDP barrier controller: the gate peripheral on a pseudo-terminal, signed firmware."""

from hardware.osdp_peripheral.barrier import (
    OUT_OF_SERVICE_TEXT,
    BarrierController,
    GateHardwareState,
)
from hardware.osdp_peripheral.errors import FirmwareFormatError, PeripheralEmulatorError
from hardware.osdp_peripheral.firmware import FirmwareFlash, FirmwareImage, sign_image, verify_image
from hardware.osdp_peripheral.pty_link import LineFault, PtyChannel, PtyPair

__all__ = [
    "OUT_OF_SERVICE_TEXT",
    "BarrierController",
    "FirmwareFlash",
    "FirmwareFormatError",
    "FirmwareImage",
    "GateHardwareState",
    "LineFault",
    "PeripheralEmulatorError",
    "PtyChannel",
    "PtyPair",
    "sign_image",
    "verify_image",
]
