"""Error family of the offline journal and its upload path.

Every error derives from :class:`card_schema.errors.RegionCardError` so the CLI shows it as a
message; a signature that does not verify is a :class:`card_schema.errors.VerificationError`, as
everywhere else in the project. Communication failures of the upload say whether a retry can help.
"""

from __future__ import annotations

from card_schema.errors import RegionCardError
from card_schema.uploads.errors import BatchFormatError, BatchSignatureError, RecordError

__all__ = [
    "BatchFormatError",
    "BatchSignatureError",
    "DuplicateTransactionError",
    "JournalError",
    "JournalStateError",
    "RecordError",
    "UploadTransportError",
]


class JournalError(RegionCardError):
    """The journal cannot do what was asked (bad intent, unknown sequence, wrong terminal)."""


class JournalStateError(JournalError):
    """A transition the state machine forbids (commit of an aborted record, for instance).

    Attributes:
        seq: terminal sequence of the record concerned.
        state: its current state, as the journal holds it.
    """

    def __init__(self, message: str, *, seq: int, state: str) -> None:
        self.seq = seq
        self.state = state
        super().__init__(f"record {seq} is {state}: {message}")


class DuplicateTransactionError(JournalError):
    """A live record already holds this (card serial, card transaction counter).

    Beginning a second transaction on the same card counter would charge the holder twice; the
    terminal must first resolve the earlier record (:meth:`Journal.resolve`) at this tap.
    """

    def __init__(self, message: str, *, seq: int) -> None:
        self.seq = seq
        super().__init__(message)


class UploadTransportError(JournalError):
    """Sending a batch failed.

    Attributes:
        retryable: ``True`` when the same bytes may succeed later (network down, 5xx, timeout);
            ``False`` when the backend refused the batch for good (4xx other than 408/429).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)
