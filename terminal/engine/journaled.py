"""One secure session journaled around its close: the pattern shared by the till and the gate.

A terminal that writes to a card journals every session on its own (``docs/journal.md``):
``journal.begin(intent)`` runs in the engine's ``before_close`` hook (after the card accepted every
modification, right before Close Secure Session), the SAM's traceable signature is asked there,
and ``journal.commit`` follows a verified close. :func:`run_journaled_session` does this and says
how the session ended (:class:`SessionOutcome`); a lost close answer is journaled UNCERTAIN for the
card's next tap to decide. Used by the canteen till (Cursus, then wallet) and the gate (PLUM, then
wallet for pay-as-you-go): two sessions in two applications never commit together, so each has
its own record, its own transaction counter and its own log as evidence.
"""

from __future__ import annotations

from collections.abc import Callable

from card_schema.crypto import KeyRole
from card_schema.uploads.records import JournalRecord, TransactionIntent
from card_schema.uploads.signing import intent_sam_input
from terminal.engine.errors import (
    CardAuthenticationError,
    CardError,
    CommunicationError,
    EngineError,
)
from terminal.engine.sam import SAMResource
from terminal.engine.status import CardCommand
from terminal.engine.transaction import CardTransactionManager, SessionOpening
from terminal.journal.errors import JournalError
from terminal.journal.store import Journal


class SessionOutcome:
    """How one secure session of a tap ended, and its journal record if it reached the journal.

    Attributes:
        status: one of the class constants.
        record: the journal record, when the session reached the journal's ``begin``.
        error: why it did not commit, for the logs.
        cause: the exception that ended it (``None`` when committed): a caller that must react
            to the kind of failure (the desk: card pulled or card refused) re-raises it.
    """

    COMMITTED = "committed"  # verified close, journal COMMITTED
    UNCERTAIN = "uncertain"  # close sent, answer lost or unverified: the next tap decides
    ABORTED = "aborted"  # journaled, but the card certainly did not commit (journal ABORTED)
    NOT_STARTED = "not_started"  # failed before the journal's begin: nothing on card or journal

    def __init__(
        self,
        status: str,
        record: JournalRecord | None,
        error: str = "",
        cause: BaseException | None = None,
    ) -> None:
        self.status = status
        self.record = record
        self.error = error
        self.cause = cause  # the exception that ended the session early, if any

    @property
    def committed(self) -> bool:
        """Whether the card committed the session (as far as the terminal knows now)."""
        return self.status == SessionOutcome.COMMITTED

    def __repr__(self) -> str:
        seq = None if self.record is None else self.record.seq
        return f"<SessionOutcome {self.status} seq={seq} {self.error}>"


def run_journaled_session(
    tm: CardTransactionManager,
    sam: SAMResource,
    journal: Journal,
    prepare: Callable[[SessionOpening], None],
    intent_of: Callable[[SessionOpening], TransactionIntent],
    *,
    ratify_now: bool = False,
    opening: SessionOpening | None = None,
    role: KeyRole = KeyRole.DEBIT,
    step: Callable[[str], None] | None = None,
    after_begin: Callable[[int, TransactionIntent], None] | None = None,
) -> SessionOutcome:
    """Open (unless ``opening`` is given), prepare, journal before the close, close, record.

    Args:
        tm: the transaction manager, with the application of the session selected.
        sam: the SAM (traceable signature of the journal record).
        journal: the terminal's journal, opened as owner.
        prepare: queues the session's commands (given the opening).
        intent_of: the journal intent, built right before the close (the SV Get of the session,
            sent by then, is known).
        ratify_now: close with immediate ratification.
        opening: the session already opened by the caller (the gate opens PLUM before deciding).
        role: key role of the session to open.
        step: called with ``journal_begin``, ``sign``, ``close`` (tests stop the process there).
        after_begin: called with the journal sequence and the intent right after ``begin``.

    Returns:
        The outcome. ``NOT_STARTED``: nothing journaled, nothing on the card. ``ABORTED``: the
        record is ABORTED. ``UNCERTAIN``: the close answer was lost or not verified.

    Raises:
        JournalError: the journal failed (the session is cancelled if the close was not sent).
    """
    seq: int | None = None
    signature = b""
    opened: list[SessionOpening] = [] if opening is None else [opening]

    def mark(name: str) -> None:
        if step is not None:
            step(name)

    def before_close() -> None:
        nonlocal seq, signature
        intent = intent_of(opened[0])
        mark("journal_begin")
        seq = journal.begin(intent)
        if after_begin is not None:
            after_begin(seq, intent)
        mark("sign")
        signed = intent_sam_input(journal.terminal_id, seq, intent)
        signature = sam.compute_signature(signed).to_bytes()
        mark("close")

    try:
        if opening is None:
            opened.append(tm.process_opening(role))
        prepare(opened[0])
        tm.process_closing(ratify_now=ratify_now, before_close=before_close)
    except JournalError:
        raise
    except CommunicationError as exc:
        if seq is None:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"reader: {exc}", exc)
        if exc.command is CardCommand.CLOSE_SECURE_SESSION and exc.may_have_reached_card:
            return SessionOutcome(
                SessionOutcome.UNCERTAIN, journal.mark_uncertain(seq), str(exc), exc
            )
        record = journal.abort(seq, f"close not delivered: {exc}"[:200])
        return SessionOutcome(SessionOutcome.ABORTED, record, str(exc), exc)
    except CardAuthenticationError as exc:
        if seq is None:
            # An SV signature refused inside the session: it was cancelled, nothing committed.
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"card: {exc}", exc)
        # The card answered its close (so it committed) but the SAM did not verify it.
        return SessionOutcome(SessionOutcome.UNCERTAIN, journal.mark_uncertain(seq), str(exc), exc)
    except CardError as exc:
        if seq is None:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"card: {exc}", exc)
        record = journal.abort(seq, f"{exc.sw:04X} {exc.status.meaning}")
        return SessionOutcome(SessionOutcome.ABORTED, record, f"card: {exc}", exc)
    except EngineError as exc:
        if seq is None:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"card: {exc}", exc)
        # Raised after begin and before the close went out (the SAM refused to sign).
        record = journal.abort(seq, f"close not sent: {exc}"[:200])
        return SessionOutcome(SessionOutcome.ABORTED, record, str(exc), exc)
    assert seq is not None
    mark("closed")
    record = journal.commit(seq, signature)
    mark("committed")
    return SessionOutcome(SessionOutcome.COMMITTED, record)
