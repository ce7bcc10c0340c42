"""The gate's barrier log: which committed validations have had their barrier opened.

The journal says what the card committed; it cannot say whether the passenger then went
through. A gate process that dies after ``journal.commit`` and before the barrier opens would
leave the passenger with a paid validation and a closed barrier, and the next tap would say
« Déjà validé ». This small side table, kept by the gate next to its journal (``<journal>.barrier``,
SQLite, synchronous writes), closes that gap:

- :meth:`BarrierLog.expect` right before Close Secure Session of a validation (after
  ``journal.begin``): "this card will hold this event; the barrier is still to open";
- :meth:`BarrierLog.opened` once the barrier was told to open;
- at the next tap of the same card at this gate, :meth:`BarrierLog.pending` lists the validations
  whose barrier never opened; the gate opens for one whose event is the card's newest and which is
  still within the anti-passback window, without charging (« Bon voyage »).

Nothing personal is kept beyond what the journal already holds (card serial, the event record);
rows older than a day are dropped at each :meth:`expect`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

KEEP = timedelta(days=1)


@dataclass(frozen=True)
class PendingBarrier:
    """A validation whose barrier has not opened (yet).

    Attributes:
        row: row id in the barrier log.
        card_serial: the card.
        event: the PLUM event the validation writes.
        at: tap time (UTC).
        journal_seq: the journal record of the validation's session.
    """

    row: int
    card_serial: bytes
    event: bytes
    at: datetime
    journal_seq: int


class BarrierLog:
    """Barrier outcomes of one gate, durable (a file) or in memory (``":memory:"``).

    Args:
        path: the SQLite file, or ``":memory:"`` (tests, a gate without a journal file).
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None)
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS barrier (row INTEGER PRIMARY KEY, card_serial TEXT, "
            "event TEXT, at TEXT, journal_seq INTEGER, opened INTEGER NOT NULL DEFAULT 0)"
        )

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def expect(self, card_serial: bytes, event: bytes, at: datetime, journal_seq: int) -> int:
        """Record a validation about to be committed, barrier not opened; returns its row."""
        when = at.astimezone(UTC)
        self._conn.execute("DELETE FROM barrier WHERE at < ?", ((when - KEEP).isoformat(),))
        cursor = self._conn.execute(
            "INSERT INTO barrier (card_serial, event, at, journal_seq) VALUES (?, ?, ?, ?)",
            (card_serial.hex(), event.hex(), when.isoformat(), journal_seq),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def opened(self, row: int) -> None:
        """The barrier opened for this validation."""
        self._conn.execute("UPDATE barrier SET opened = 1 WHERE row = ?", (row,))

    def pending(self, card_serial: bytes) -> list[PendingBarrier]:
        """This card's validations whose barrier never opened, newest first."""
        rows = self._conn.execute(
            "SELECT row, event, at, journal_seq FROM barrier WHERE card_serial = ? AND opened = 0 "
            "ORDER BY row DESC",
            (card_serial.hex(),),
        ).fetchall()
        return [
            PendingBarrier(row, card_serial, bytes.fromhex(event), datetime.fromisoformat(at), seq)
            for row, event, at, seq in rows
        ]
