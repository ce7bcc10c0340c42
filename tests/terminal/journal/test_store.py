"""The journal's state machine, its SQLite settings and its outbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from card_schema.errors import RegionCardError
from card_schema.uploads.records import (
    PurseMovement,
    PurseUnit,
    Resolution,
    TransactionIntent,
    TransactionState,
)
from terminal.journal.errors import (
    DuplicateTransactionError,
    JournalError,
    JournalStateError,
    RecordError,
)
from terminal.journal.store import Journal

MakeIntent = Callable[..., TransactionIntent]
TERMINAL_ID = "CANTINE-59-0007"  # the journal fixture's terminal
BUILT_AT = datetime(2025, 9, 1, 14, 0, tzinfo=UTC)
SIG = bytes.fromhex("5A4D0001000000075AA5") + bytes(8)


def test_sqlite_runs_in_wal_with_full_synchronous(journal: Journal) -> None:
    conn = journal._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_begin_allocates_increasing_sequences_and_keeps_the_intent(
    journal: Journal, make_intent: MakeIntent
) -> None:
    seqs = [journal.begin(make_intent(card_tx_counter=n)) for n in (1, 2, 3)]
    assert seqs == [1, 2, 3]
    record = journal.get(2)
    assert record.state is TransactionState.PENDING
    assert record.intent == make_intent(card_tx_counter=2)
    assert record.terminal_id == TERMINAL_ID
    assert record.sam_signature is None and record.resolution is None


def test_commit_and_its_idempotence(journal: Journal, make_intent: MakeIntent) -> None:
    seq = journal.begin(make_intent())
    record = journal.commit(seq, SIG)
    assert record.state is TransactionState.COMMITTED
    assert record.resolution is Resolution.CARD_CLOSE
    assert record.sam_signature == SIG
    assert isinstance(record.decided_at, datetime)
    assert journal.commit(seq, SIG) == record
    with pytest.raises(JournalStateError):
        journal.commit(seq, SIG[::-1])
    with pytest.raises(JournalStateError):
        journal.abort(seq, "too late")
    with pytest.raises(JournalStateError):
        journal.mark_uncertain(seq)


def test_commit_needs_the_sam_signature(journal: Journal, make_intent: MakeIntent) -> None:
    seq = journal.begin(make_intent())
    with pytest.raises(JournalError):
        journal.commit(seq, b"")


def test_abort(journal: Journal, make_intent: MakeIntent) -> None:
    seq = journal.begin(make_intent())
    record = journal.abort(seq, "6982 security status not satisfied")
    assert record.state is TransactionState.ABORTED
    assert record.resolution is Resolution.CARD_REFUSAL
    assert record.abort_reason == "6982 security status not satisfied"
    assert journal.abort(seq, "again") == record
    with pytest.raises(JournalStateError):
        journal.commit(seq, SIG)


def test_uncertain_is_only_left_through_resolve(journal: Journal, make_intent: MakeIntent) -> None:
    seq = journal.begin(make_intent())
    assert journal.mark_uncertain(seq).state is TransactionState.UNCERTAIN
    assert journal.mark_uncertain(seq).state is TransactionState.UNCERTAIN
    with pytest.raises(JournalStateError):
        journal.commit(seq, SIG)
    with pytest.raises(JournalStateError):
        journal.abort(seq, "no")


def test_unknown_sequence(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no journal record 99"):
        journal.commit(99, SIG)


def test_pending_records_become_uncertain_at_restart(
    journal_path: Path, make_intent: MakeIntent
) -> None:
    with Journal.open(journal_path, TERMINAL_ID) as first:
        done = first.begin(make_intent(card_tx_counter=1))
        first.commit(done, SIG)
        open_one = first.begin(make_intent(card_tx_counter=2))
    with Journal.open(journal_path, TERMINAL_ID) as second:
        assert second.recovered == (open_one,)
        assert second.get(open_one).state is TransactionState.UNCERTAIN
        assert second.get(done).state is TransactionState.COMMITTED
        assert second.begin(make_intent(card_tx_counter=3)) == open_one + 1


def test_a_card_session_is_recorded_once(journal: Journal, make_intent: MakeIntent) -> None:
    seq = journal.begin(make_intent(card_tx_counter=7))
    with pytest.raises(DuplicateTransactionError) as info:
        journal.begin(make_intent(card_tx_counter=7))
    assert info.value.seq == seq
    # Once the card refused, the same counter may be tried again; the sequence is not reused.
    journal.abort(seq, "refused")
    assert journal.begin(make_intent(card_tx_counter=7)) == seq + 1


def test_resolve_recovers_a_committed_session_and_does_not_charge_again(
    journal: Journal, make_intent: MakeIntent
) -> None:
    intent = make_intent(card_tx_counter=41)
    seq = journal.begin(intent)
    journal.mark_uncertain(seq)
    assert intent.written_event is not None
    events_now = (intent.written_event, *intent.last_events)
    [record] = journal.resolve(intent.card_serial, 42, events_now)
    assert record.seq == seq
    assert record.state is TransactionState.COMMITTED
    assert record.resolution is Resolution.RECOVERED_FROM_CARD
    assert record.sam_signature is None
    assert journal.resolve(intent.card_serial, 42, events_now) == []


def test_resolve_aborts_a_session_the_card_never_committed(
    journal: Journal, make_intent: MakeIntent
) -> None:
    intent = make_intent(card_tx_counter=41)
    seq = journal.begin(intent)
    journal.mark_uncertain(seq)
    [record] = journal.resolve(intent.card_serial, 41, intent.last_events)
    assert record.state is TransactionState.ABORTED
    assert record.resolution is Resolution.NOT_ON_CARD
    # The tap goes on with the same card counter: allowed now.
    assert journal.begin(intent) == seq + 1


def test_resolve_leaves_inconclusive_sessions_uncertain(
    journal: Journal, make_intent: MakeIntent
) -> None:
    intent = make_intent(card_tx_counter=41)
    seq = journal.begin(intent)
    journal.mark_uncertain(seq)
    rotated = (b"\x01" * 29, b"\x02" * 29, b"\x03" * 29)
    [record] = journal.resolve(intent.card_serial, 50, rotated)
    assert record.state is TransactionState.UNCERTAIN
    assert [r.seq for r in journal.undecided()] == [seq]


def test_resolve_only_touches_the_card_seen(journal: Journal, make_intent: MakeIntent) -> None:
    other = make_intent(card_serial=bytes.fromhex("00000000CAFE0002"))
    seq = journal.begin(other)
    journal.mark_uncertain(seq)
    assert journal.resolve(bytes.fromhex("00000000CAFE0001"), 99, ()) == []
    assert journal.get(seq).state is TransactionState.UNCERTAIN


def test_a_journal_belongs_to_one_terminal(journal_path: Path) -> None:
    Journal.open(journal_path, TERMINAL_ID).close()
    with pytest.raises(JournalError, match="belongs to terminal"):
        Journal.open(journal_path, "GATE-0001")


def test_one_owner_at_a_time_and_readers_do_not_record(
    journal: Journal, journal_path: Path, make_intent: MakeIntent
) -> None:
    with pytest.raises(JournalError, match="already open"):
        Journal.open(journal_path, TERMINAL_ID)
    with Journal.open(journal_path, TERMINAL_ID, owner=False) as reader:
        with pytest.raises(JournalError, match="owner"):
            reader.begin(make_intent())
        seq = journal.begin(make_intent())
        assert reader.get(seq).state is TransactionState.PENDING
        assert reader.recovered == ()


def test_seq_floor_continues_above_what_the_backend_has_seen(
    journal_path: Path, make_intent: MakeIntent
) -> None:
    with Journal.open(journal_path, TERMINAL_ID, seq_floor=5000) as handle:
        assert handle.begin(make_intent()) == 5001
    with Journal.open(journal_path, TERMINAL_ID, seq_floor=0) as handle:
        assert handle.last_seq() == 5001


def test_bad_terminal_id_and_bad_intents_are_refused(
    journal_path: Path, make_intent: MakeIntent
) -> None:
    with pytest.raises(RecordError):
        Journal.open(journal_path, "GATE 1/2")
    with pytest.raises(RecordError, match="timezone"):
        make_intent(occurred_at=datetime(2025, 9, 1, 12, 0))
    with pytest.raises(RecordError, match="balance"):
        PurseMovement("wallet.sv", PurseUnit.EUROCENT, -100, 500, 450)
    with pytest.raises(RecordError):
        make_intent(card_serial=b"")


def test_the_outbox(journal: Journal, make_intent: MakeIntent) -> None:
    first = journal.begin(make_intent(card_tx_counter=1))
    second = journal.begin(make_intent(card_tx_counter=2))
    journal.commit(first, SIG)
    assert [r.seq for r in journal.unbatched(10)] == [first]
    with pytest.raises(JournalError, match="undecided"):
        journal.store_batch("b", [first, second], b"body", BUILT_AT)
    assert journal.unacked_batches() == [], "a failed store leaves nothing behind"
    stored = journal.store_batch("b", [first], b"body", BUILT_AT)
    assert stored.record_count == 1 and stored.acked_at is None
    assert journal.store_batch("b", [first], b"body", BUILT_AT) == stored
    with pytest.raises(JournalError, match="other bytes"):
        journal.store_batch("b", [first], b"other", BUILT_AT)
    with pytest.raises(JournalError, match="already batched"):
        journal.store_batch("c", [first], b"body", BUILT_AT)
    assert journal.unuploaded_count() == 1
    acked = journal.mark_batch_acked("b", b"{}")
    assert acked.acked_at is not None
    assert journal.mark_batch_acked("b", b"{}") == acked
    assert journal.unuploaded_count() == 0 and journal.unacked_batches() == []


def test_errors_are_project_errors(journal: Journal) -> None:
    with pytest.raises(RegionCardError):
        journal.get(1)


def test_database_errors_are_translated(journal: Journal, make_intent: MakeIntent) -> None:
    journal._conn.execute("DROP INDEX transactions_undecided")
    journal._conn.execute("DROP TABLE transactions")
    with pytest.raises(JournalError) as info:
        journal.begin(make_intent())
    assert isinstance(info.value.__cause__, sqlite3.Error)
