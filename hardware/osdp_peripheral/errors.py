"""Error family of the emulated OSDP peripheral."""

from __future__ import annotations

from card_schema.errors import RegionCardError


class PeripheralEmulatorError(RegionCardError):
    """The emulated barrier controller cannot do what was asked (pty, libosdp setup)."""


class FirmwareFormatError(PeripheralEmulatorError):
    """A firmware image or transfer is not laid out as the controller expects."""
