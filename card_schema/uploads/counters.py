"""The direction of a card's transaction counter, defined once for terminals and backend.

A Calypso card's transaction counter is 3 bytes and counts **down**: a fresh card holds
``0xFFFFFF`` and every secure session decrements it (Open Secure Session returns the value before
the session; ``docs/secure-session.md``, ``hardware/card/image.py``; 0 means the card is worn
out). Uploads carry that raw value as ``card_tx_counter``. Whatever depends on the order of a
card's sessions (sorting, previous / next session, gaps, the event log read back at a later tap,
purse chaining) uses :func:`session_number` instead, which increases with time.

Pure arithmetic; ``card_tx_counter`` stays the deduplication key (the direction does not matter
for equality).
"""

from __future__ import annotations

CARD_COUNTER_MAX = 0xFFFFFF
"""Transaction counter of a card fresh from the factory (3 bytes, Calypso counts down from it)."""


def session_number(card_tx_counter: int) -> int:
    """Rank of the session opened at ``card_tx_counter`` in the card's life, ascending from 0.

    Calypso cards count their transaction counter down from ``CARD_COUNTER_MAX``, so the first
    session of a fresh card (counter ``0xFFFFFF`` at open) is session 0, the next one (counter
    ``0xFFFFFE``) session 1, and session ``n`` was preceded by session ``n - 1``. A counter
    above ``CARD_COUNTER_MAX`` (no real card sends one) gives a negative number.
    """
    return CARD_COUNTER_MAX - card_tx_counter


def card_tx_counter_of(session: int) -> int:
    """The transaction counter the card reads at the open of session number ``session``.

    The inverse of :func:`session_number`: ``card_tx_counter_of(session_number(c)) == c``.
    """
    return CARD_COUNTER_MAX - session
