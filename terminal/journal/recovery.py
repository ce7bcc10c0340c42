"""Deciding an uncertain session from what the card shows at its next tap (pure, no IO).

When the Close Secure Session response is lost, the terminal cannot know whether the card
committed (field-facts, "Anti-tearing and ratification"). A session that is not closed correctly
leaves the card as it was, so the card itself is the witness: at the next tap the terminal reads
the card's transaction counter and the log the session would have appended to, and this module
decides.

Rules, in order (``docs/journal.md`` explains them with examples):

1. The transaction counter still has the value read at Open Secure Session: no session of any
   kind happened on the card since, so ours did not commit -> ABORTED. This holds whether the card
   moves its counter at every session opening (Calypso) or only at commit.
2. Otherwise locate the log as it was read before the session (``intent.last_events``, newest
   first) inside the log read now: the records in front of it are the records written since, and
   the oldest of those is the first session after ours began, which is ours if it committed.
   No new record -> ABORTED; the oldest new record equals ``intent.written_event`` -> COMMITTED;
   another record -> ABORTED (a later session wrote it, ours left nothing).
3. If the old log cannot be located (it rotated out of a cyclic log of 3 records), or if repeated
   identical records make two readings possible and they disagree, the evidence is inconclusive:
   the record stays UNCERTAIN, listed in every upload batch, and the backend reconciles it with
   the card's counter sequence seen by other terminals. Guessing would either lose a committed
   transaction or charge one the card never made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from card_schema.uploads.records import TransactionIntent, TransactionState


@dataclass(frozen=True)
class Decision:
    """Outcome of :func:`decide_from_card`.

    Attributes:
        state: COMMITTED, ABORTED, or UNCERTAIN when the card's evidence is inconclusive.
        reason: one sentence for the audit trail.
    """

    state: TransactionState
    reason: str


def decide_from_card(
    intent: TransactionIntent, card_tx_counter_now: int, events_now: Sequence[bytes]
) -> Decision:
    """Decide whether the session described by ``intent`` was committed by the card.

    Args:
        intent: the intent recorded before the lost close.
        card_tx_counter_now: the card's transaction counter read at this tap, before this tap's
            own session changes anything.
        events_now: the same log ``intent.last_events`` came from, read at this tap, newest first.

    Returns:
        The decision; UNCERTAIN when the card cannot tell (see the module rules).
    """
    if card_tx_counter_now == intent.card_tx_counter:
        return Decision(TransactionState.ABORTED, "card transaction counter unchanged since open")
    before = list(intent.last_events)
    now = [bytes(e) for e in events_now]
    if not before:
        return _decide_without_anchor(intent, now)
    outcomes: set[TransactionState] = set()
    # k = number of records written since the session opened; the remaining len(now) - k records
    # must be the newest records of the old log. Only readings with at least one overlapping
    # record are evidence; every such reading must agree.
    for k in range(len(now)):
        if now[k:] == before[: len(now) - k]:
            if k == 0:
                outcomes.add(TransactionState.ABORTED)
            elif intent.written_event is not None and now[k - 1] == intent.written_event:
                outcomes.add(TransactionState.COMMITTED)
            elif intent.written_event is not None:
                outcomes.add(TransactionState.ABORTED)
            else:
                outcomes.add(TransactionState.UNCERTAIN)
    if len(outcomes) == 1:
        state = outcomes.pop()
        if state is TransactionState.COMMITTED:
            return Decision(
                state, "the card's log holds the session's event right after the old log"
            )
        if state is TransactionState.ABORTED:
            return Decision(state, "the card's log shows no event of this session")
    if not outcomes:
        return Decision(TransactionState.UNCERTAIN, "the card's log rotated past the old events")
    return Decision(TransactionState.UNCERTAIN, "the card's log can be read two ways")


def _decide_without_anchor(intent: TransactionIntent, now: list[bytes]) -> Decision:
    # The log was empty before the session: every record now is newer than the open.
    if not now:
        return Decision(TransactionState.ABORTED, "the card's log is still empty")
    if intent.written_event is not None and now[-1] == intent.written_event:
        return Decision(TransactionState.COMMITTED, "the card's first event is this session's")
    return Decision(
        TransactionState.UNCERTAIN, "the card's log may have rotated since it was empty"
    )
