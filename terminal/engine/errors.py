"""Errors of the transaction engine: one family, all :class:`EngineError` (a ``RegionCardError``).

=============================  =================================================================
error                          meaning
=============================  =================================================================
``CardError``                  the card answered a status word that is not a success; carries
                               the status word, the command and the meaning from the table
``SAMError``                   the SAM answered a status word that is not a success
``CardAuthenticationError``    the card's close signature (or SV signature) did not verify in the
                               SAM: the card may have committed, but it is not proven genuine
``CommunicationError``         a reader could not carry a command or its answer; says whether
                               the command may have reached the card (tearing recovery)
                               and which device failed (:func:`sam_unreachable`)
``SelectionError``             no application of the scenario answered (wrong ATR, not found)
``SessionStateError``          the API was used out of order (write outside a session, ...)
=============================  =================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from card_schema.errors import RegionCardError

if TYPE_CHECKING:
    from terminal.engine.status import CardCommand, SAMCommand, StatusInfo


class EngineError(RegionCardError):
    """Root of the transaction engine's errors."""


class CardError(EngineError):
    """The card refused a command (status word other than a success).

    Attributes:
        sw: the status word, e.g. ``0x6982``.
        command: the card command refused.
        status: meaning and outcome of ``sw`` for this command (``terminal.engine.status``).
    """

    def __init__(self, command: CardCommand, sw: int, status: StatusInfo) -> None:
        self.command = command
        self.sw = sw
        self.status = status
        super().__init__(f"card refused {command.value}: {sw:04X} ({status.meaning})")


class SAMError(EngineError):
    """The SAM refused a command.

    Attributes:
        sw: the status word.
        command: the SAM command refused.
        status: meaning and outcome of ``sw`` for this command.
    """

    def __init__(self, command: SAMCommand, sw: int, status: StatusInfo) -> None:
        self.command = command
        self.sw = sw
        self.status = status
        super().__init__(f"SAM refused {command.value}: {sw:04X} ({status.meaning})")


class CardAuthenticationError(EngineError):
    """The SAM did not verify the card's signature (close or SV operation).

    The card answered its close, so it may well have committed: the terminal treats the session as
    uncertain, never as committed, and never as certainly aborted.
    """


class CommunicationError(EngineError):
    """A reader could not carry a command to the card (or the SAM) and its answer back.

    Attributes:
        command: the command being sent (``CardCommand`` or ``SAMCommand``).
        device: ``"card"`` or ``"sam"``.
        may_have_reached_card: ``True`` when the command may have been executed (its answer was
            lost): for a Close Secure Session this means the card may have committed, and the
            terminal must let the next tap decide (``Journal.mark_uncertain``).
    """

    def __init__(
        self,
        command: CardCommand | SAMCommand,
        device: str,
        message: str,
        *,
        may_have_reached_card: bool,
    ) -> None:
        self.command = command
        self.device = device
        self.may_have_reached_card = may_have_reached_card
        super().__init__(f"{device} {command.value}: {message}")


class SelectionError(EngineError):
    """The card in the field does not match the selection scenario (ATR, application absent)."""


class SessionStateError(EngineError):
    """The engine was used out of order (a write outside a session, a close with none open...)."""


def sam_unreachable(exc: BaseException | None) -> bool:
    """Whether ``exc``, or the error it was raised from, is the SAM's reader failing.

    The terminal tells the person in front of it something else then: a dead SAM is not fixed by
    presenting the card again. Follows ``__cause__`` (a close whose signature the SAM could not
    check is a :class:`CardAuthenticationError` raised from the SAM's ``CommunicationError``).
    """
    while exc is not None:
        if isinstance(exc, CommunicationError):
            return exc.device == "sam"
        exc = exc.__cause__
    return False
