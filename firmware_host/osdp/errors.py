"""Error family of the OSDP gate peripheral layer (host side)."""

from __future__ import annotations

from card_schema.errors import RegionCardError


class PeripheralError(RegionCardError):
    """The gate peripheral cannot do what was asked.

    Attributes:
        may_have_reached: whether the command may have reached the peripheral before the failure
            (``True`` when it was queued on a link that then went down): the caller must not assume
            the barrier stayed closed.
    """

    def __init__(self, message: str, *, may_have_reached: bool = False) -> None:
        self.may_have_reached = may_have_reached
        super().__init__(message)


class PeripheralOfflineError(PeripheralError):
    """The peripheral does not answer on the line, or the secure channel is not up."""


class SerialLinkError(PeripheralError):
    """The serial port cannot be opened."""


class FirmwareUpdateError(PeripheralError):
    """A firmware update was refused or did not complete.

    Attributes:
        result: the peripheral's ``UpdateResult`` code when it reported one.
    """

    def __init__(self, message: str, *, result: int | None = None) -> None:
        self.result = result
        super().__init__(message, may_have_reached=True)
