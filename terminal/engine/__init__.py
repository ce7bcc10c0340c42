"""The Calypso transaction engine: selection, prepare/process, secure sessions with the SAM.

Public API (stable; the gate and the canteen till build on it):

- :mod:`.selection`: :class:`CardSelection` (DF name + ATR filters, reads piggy-backed),
  :func:`select_card` -> :class:`CalypsoCard`.
- :mod:`.transaction`: :class:`CardTransactionManager` — ``prepare_read_records``,
  ``prepare_update_record``, ``prepare_append_record``, ``prepare_increase``,
  ``prepare_decrease``, ``prepare_sv_get``, ``prepare_sv_debit``, ``prepare_sv_reload``,
  ``prepare_sv_undebit``, ``prepare_invalidate``, ``prepare_rehabilitate``;
  ``process_select_application``, ``process_commands``, ``process_opening(role, read=...)`` ->
  :class:`SessionOpening`, ``process_closing(ratify_now=False, before_close=...)`` ->
  :class:`SessionClosing`, ``process_ratification``, ``process_cancel``.
- :mod:`.sam`: :class:`SAMResource` (one method per SAM command; ``compute_signature`` ->
  :class:`TraceableSignature`).
- :mod:`.image`: :class:`CalypsoCard`, :class:`ApplicationImage`, :class:`SVState` — raw records,
  counters, SV state, transaction counter, ratification flag.
- :mod:`.status`: per-command status-word tables (:data:`CARD_STATUS`, :data:`SAM_STATUS`),
  :class:`Outcome`, :class:`CardCommand`, :class:`SAMCommand`.
- :mod:`.errors`: :class:`EngineError` and its family; :class:`CommunicationError` says
  whether the command may have reached the card.
- :mod:`.stats`: :class:`APDUCounter`.

Typical session (a gate)::

    counter = APDUCounter()
    sam = SAMResource(sam_reader, counter)
    card = select_card(reader, CardSelection("plum", reads=("environment", "events")),
                       counter=counter)
    tm = CardTransactionManager(reader, card, sam)
    opening = tm.process_opening(KeyRole.DEBIT, read=("counters", 1))
    tm.prepare_decrease("counters", 2, 1).prepare_append_record("events", event)
    closing = tm.process_closing(before_close=lambda: journal.begin(intent))
    tm.process_ratification()

See ``docs/terminal-engine.md``.
"""

from terminal.engine.errors import (
    CardAuthenticationError,
    CardError,
    CommunicationError,
    EngineError,
    SAMError,
    SelectionError,
    SessionStateError,
    sam_unreachable,
)
from terminal.engine.image import ApplicationImage, CalypsoCard, SVState
from terminal.engine.sam import SAMResource, TraceableSignature
from terminal.engine.selection import REGIONAL_CARD_ATR, CardSelection, select_card
from terminal.engine.stats import APDUCounter
from terminal.engine.status import (
    CARD_STATUS,
    SAM_STATUS,
    CardCommand,
    Outcome,
    SAMCommand,
    StatusInfo,
    card_status,
    sam_status,
)
from terminal.engine.transaction import (
    CardTransactionManager,
    SessionClosing,
    SessionOpening,
    SVOperation,
    sv_date_time,
)

__all__ = [
    "CARD_STATUS",
    "REGIONAL_CARD_ATR",
    "SAM_STATUS",
    "APDUCounter",
    "ApplicationImage",
    "CalypsoCard",
    "CardAuthenticationError",
    "CardCommand",
    "CardError",
    "CardSelection",
    "CardTransactionManager",
    "CommunicationError",
    "EngineError",
    "Outcome",
    "SAMCommand",
    "SAMError",
    "SAMResource",
    "SVOperation",
    "SVState",
    "SelectionError",
    "SessionClosing",
    "SessionOpening",
    "SessionStateError",
    "StatusInfo",
    "TraceableSignature",
    "card_status",
    "sam_status",
    "sam_unreachable",
    "select_card",
    "sv_date_time",
]
