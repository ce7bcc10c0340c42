"""Deciding an uncertain session from the card's counter and event log at its next tap."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from card_schema.uploads.records import TransactionIntent, TransactionState
from terminal.journal.recovery import decide_from_card

A, B, C, W, X, Y = (bytes([n]) * 29 for n in (0xA0, 0xB0, 0xC0, 0xEE, 0x01, 0x02))
COMMITTED, ABORTED, UNCERTAIN = (
    TransactionState.COMMITTED,
    TransactionState.ABORTED,
    TransactionState.UNCERTAIN,
)


@pytest.mark.parametrize(
    ("before", "written", "counter_now", "now", "expected"),
    [
        # Counter unchanged: no session at all since the open, whatever the log says.
        ((A, B, C), W, 41, (A, B, C), ABORTED),
        # Committed, nothing since: the session's event sits on top of the old log.
        ((A, B, C), W, 42, (W, A, B), COMMITTED),
        # Committed, then one more session elsewhere.
        ((A, B, C), W, 43, (X, W, A), COMMITTED),
        # Calypso cards move the counter at every open: aborted, then nothing written.
        ((A, B, C), W, 42, (A, B, C), ABORTED),
        # Aborted, then another session wrote its own event.
        ((A, B, C), W, 43, (X, A, B), ABORTED),
        # Three sessions since: the old log rotated out, the card cannot tell.
        ((A, B, C), W, 45, (Y, X, W), UNCERTAIN),
        # An event identical to the last one (same gate, same minute): positions still tell.
        ((A, B, C), A, 42, (A, A, B), COMMITTED),
        # Identical events everywhere: two readings disagree, so the card cannot tell.
        ((A, A, A), A, 42, (A, A, A), UNCERTAIN),
        # Empty log before: the first event is ours, or the log is still empty.
        ((), W, 42, (W,), COMMITTED),
        ((), W, 42, (), ABORTED),
        ((), W, 44, (X, Y), UNCERTAIN),
        # A session that writes no event can only be proved absent.
        ((A, B, C), None, 42, (A, B, C), ABORTED),
        ((A, B, C), None, 42, (X, A, B), UNCERTAIN),
    ],
)
def test_decide_from_card(
    make_intent: Callable[..., TransactionIntent],
    before: tuple[bytes, ...],
    written: bytes | None,
    counter_now: int,
    now: tuple[bytes, ...],
    expected: TransactionState,
) -> None:
    intent = make_intent(card_tx_counter=41, last_events=before, written_event=written)
    decision = decide_from_card(intent, counter_now, now)
    assert decision.state is expected
    assert decision.reason
