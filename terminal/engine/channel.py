"""One APDU channel over a reader: counts, traces (the reader does), and translates errors.

Reader errors become :class:`~terminal.engine.errors.CommunicationError` naming the command and
keeping ``may_have_reached_card``, with the reader error as ``__cause__``.
"""

from __future__ import annotations

from firmware_host.readers.base import Reader, ReaderError
from terminal.engine.errors import CommunicationError
from terminal.engine.stats import APDUCounter
from terminal.engine.status import CardCommand, SAMCommand


class APDUChannel:
    """Sends APDUs to one device (the card or the SAM) through a :class:`Reader`.

    Args:
        reader: a connected reader.
        device: ``"card"`` or ``"sam"`` (which counter of ``counter`` to move).
        counter: the transaction's APDU counter.
    """

    def __init__(self, reader: Reader, device: str, counter: APDUCounter) -> None:
        if device not in ("card", "sam"):
            raise ValueError("device is 'card' or 'sam'")
        self.reader = reader
        self.device = device
        self.counter = counter

    def transmit(self, command: CardCommand | SAMCommand, apdu: bytes) -> tuple[bytes, int]:
        """Send ``apdu``; return the response data and the status word.

        Raises:
            CommunicationError: the reader failed; ``may_have_reached_card`` says whether the
                command may have been executed.
        """
        if self.device == "card":
            self.counter.count_card(command.value)
        else:
            self.counter.count_sam(command.value)
        try:
            response = self.reader.transmit(apdu)
        except ReaderError as exc:
            raise CommunicationError(
                command, self.device, str(exc), may_have_reached_card=exc.may_have_reached_card
            ) from exc
        return response[:-2], int.from_bytes(response[-2:], "big")
