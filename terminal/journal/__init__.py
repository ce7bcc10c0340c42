"""Offline journal of the terminals: write-ahead record of card sessions and signed uploads.

- :mod:`terminal.journal.store`: the SQLite (WAL) journal and its state machine.
- :mod:`terminal.journal.recovery`: deciding an uncertain session at the card's next tap.
- :mod:`card_schema.uploads.batch`: the ``regioncard.batch/1`` upload format (Ed25519 signed).
- :mod:`terminal.journal.upload`: the upload queue and its transports.

See ``docs/journal.md`` and ``docs/batch-format.md``.
"""

from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    Resolution,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from terminal.journal.store import Journal

__all__ = [
    "Journal",
    "JournalRecord",
    "PurseMovement",
    "PurseUnit",
    "Resolution",
    "TransactionIntent",
    "TransactionKind",
    "TransactionState",
]
