"""Write-ahead record of the actions a terminal wrote, until the backend has them confirmed.

A row is written right after the session's journal record (``journal.begin``, before the Close
Secure Session goes out): action number, card serial, the card transaction counter of the session
(read at its opening) and the journal sequence. The session's fate is the journal's:

- the close committed: the row becomes ``committed``;
- the card did not commit (close not delivered, card refused): the row is dropped, the action
  stays pending in the list and the next tap writes it;
- uncertain (the close answer was lost): the row stays ``written`` until the journal decides it at
  the card's next tap here (:meth:`ActionOutbox.settle`).

The background sync sends the ``committed`` rows to ``POST /api/v1/action-lists/{id}/confirm``
with the counter (idempotent on the backend: the same counter again is a no-op, another one a
409) and marks them ``sent``. SQLite, synchronous FULL, file mode 0600 (card serials).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from card_schema.uploads.records import TransactionState
from terminal.journal import Journal
from terminal.journal.errors import JournalError

WRITTEN = "written"
COMMITTED = "committed"
SENT = "sent"


@dataclass(frozen=True)
class Confirmation:
    """A write the card committed, to be confirmed to the backend."""

    action_id: int
    card_serial: str
    card_tx_counter: int
    journal_seq: int


class ActionOutbox:
    """The terminal's action writes and their confirmation state (thread-safe)."""

    def __init__(self, path: Path | str) -> None:
        """Open (or create, mode 0600) the outbox file.

        Raises:
            OSError: the file cannot be created.
        """
        self.path = Path(path)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS writes (action_id INTEGER NOT NULL, card_serial TEXT NOT "
            "NULL, card_tx_counter INTEGER NOT NULL, journal_seq INTEGER NOT NULL, state TEXT NOT "
            "NULL, PRIMARY KEY (action_id, journal_seq))"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()

    def record(self, action_id: int, card_serial: str, card_tx_counter: int, seq: int) -> None:
        """Write-ahead: the session ``seq`` is about to write ``action_id`` (before its close)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO writes VALUES (?, ?, ?, ?, ?)",
                (action_id, card_serial.upper(), card_tx_counter, seq, WRITTEN),
            )

    def session_ended(self, seq: int, committed: bool | None) -> None:
        """The journal's verdict on session ``seq``: committed, not committed, or unknown."""
        with self._lock:
            if committed is True:
                self._conn.execute(
                    "UPDATE writes SET state = ? WHERE journal_seq = ? AND state = ?",
                    (COMMITTED, seq, WRITTEN),
                )
            elif committed is False:
                self._conn.execute(
                    "DELETE FROM writes WHERE journal_seq = ? AND state = ?", (seq, WRITTEN)
                )

    def settle(self, journal: Journal) -> None:
        """Apply the journal's verdict to the rows still ``written`` (uncertain sessions)."""
        with self._lock:
            seqs = [
                r[0]
                for r in self._conn.execute(
                    "SELECT journal_seq FROM writes WHERE state = ?", (WRITTEN,)
                )
            ]
        for seq in seqs:
            try:
                state = journal.get(seq).state
            except JournalError:
                self.session_ended(seq, False)
                continue
            if state is TransactionState.COMMITTED:
                self.session_ended(seq, True)
            elif state is TransactionState.ABORTED:
                self.session_ended(seq, False)

    def due(self) -> list[Confirmation]:
        """Committed writes not yet confirmed to the backend."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT action_id, card_serial, card_tx_counter, journal_seq FROM writes "
                "WHERE state = ? ORDER BY journal_seq",
                (COMMITTED,),
            ).fetchall()
        return [Confirmation(*row) for row in rows]

    def sent(self, confirmation: Confirmation) -> None:
        """The backend has the confirmation."""
        with self._lock:
            self._conn.execute(
                "UPDATE writes SET state = ? WHERE action_id = ? AND journal_seq = ?",
                (SENT, confirmation.action_id, confirmation.journal_seq),
            )

    def states(self) -> dict[int, str]:
        """Action number -> state of its latest write (tests, supervision)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT action_id, state FROM writes ORDER BY journal_seq"
            ).fetchall()
        return {int(a): str(s) for a, s in rows}
