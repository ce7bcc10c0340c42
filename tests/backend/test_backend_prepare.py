"""The upload worker's preparation of records, the bodies table and the WAL checkpointer.

The whole validation-loop suite runs with records prepared by the loop and by the upload
worker (``vl_db`` parameters); here: that the preparation is really stored and really read,
that one that does not match its batch is redone, that a forged signature found at upload is
a forgery for the loop, the 0005 migration, and the background checkpoints.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from backend.db import SQLITE_PAGE_SIZE, SQLiteCheckpointer, make_engine, make_sessionmaker
from backend.migrate import current, downgrade, upgrade
from backend.privacy.service import purge_batch_bodies
from backend.uploads.service import receive_batch
from backend.validation.models import TapStatus
from backend.validation.prepare import (
    PREPARED_FORMAT,
    SAM_FORGED,
    SAM_NONE,
    SAM_VERIFIED,
    PreparedMismatch,
    decode_prepared,
    encode_prepared,
)
from card_schema.uploads.batch import AckStatus
from tests.backend.validation_fixtures import (
    T0,
    KeyRing,
    TerminalSim,
    VLDatabase,
    ctr,
    fresh_postgres_database,
    pseudonym_of,
    vl_db,
    vl_sqlite,
)

__all__ = ["vl_db", "vl_sqlite"]  # the fixture, imported for pytest

CARD = bytes.fromhex("0000000012345678")


def _prepared_db(vl_db: VLDatabase) -> VLDatabase:
    vl_db.prepare_at_upload = True
    return vl_db


def _upload_three(db: VLDatabase) -> TerminalSim:
    gate = TerminalSim("GATE-LIL-0042")
    records = [
        gate.record(CARD, ctr(1)),
        gate.record(CARD, ctr(2), forge=True),
        gate.record(CARD, ctr(3), committed=False),
    ]
    outcome = db.upload(KeyRing(gate), gate, gate.batch(records))
    assert outcome.ack.status is AckStatus.ACCEPTED
    return gate


def _stored_prepared(db: VLDatabase) -> bytes:
    with db.engine.connect() as conn:
        return bytes(conn.execute(text("SELECT prepared FROM upload_bodies")).scalar_one())


def test_the_upload_worker_stores_its_preparation(vl_db: VLDatabase) -> None:
    db = _prepared_db(vl_db)
    _upload_three(db)
    stored = _stored_prepared(db)
    records = [{}, {}, {}]
    prepared = decode_prepared(stored, records)  # type: ignore[arg-type]
    assert [p[1] for p in prepared] == [SAM_VERIFIED, SAM_FORGED, SAM_NONE]
    assert prepared[0][2] == "5A000001" and prepared[0][3] == 1
    assert prepared[1][4] == "traceable signature does not verify"
    assert {p[5] for p in prepared} == {pseudonym_of(CARD)}
    assert all(len(p[0]) == 32 for p in prepared)


def test_the_loop_reads_the_stored_preparation_instead_of_redoing_it(vl_db: VLDatabase) -> None:
    db = _prepared_db(vl_db)
    _upload_three(db)
    loop = db.loop()

    def must_not_run(_records: object) -> None:
        raise AssertionError("the loop prepared a batch the upload worker had prepared")

    loop.preparer.prepare = must_not_run  # type: ignore[assignment,method-assign]
    report = loop.run_once()
    assert (report.records, report.posted) == (3, 1)
    statuses = [s for (s,) in db.rows("SELECT status FROM taps ORDER BY terminal_seq")]
    assert statuses == [TapStatus.POSTED, TapStatus.FORGED, TapStatus.ABORTED]
    assert db.scalar("SELECT count(*) FROM deny_candidates") == 1


def test_a_preparation_that_does_not_match_its_batch_is_redone(vl_db: VLDatabase) -> None:
    db = _prepared_db(vl_db)
    _upload_three(db)
    with db.engine.begin() as conn:  # one entry short: not this batch's preparation
        prepared = decode_prepared(_stored_prepared(db), [{}, {}, {}])  # type: ignore[list-item]
        conn.execute(
            text("UPDATE upload_bodies SET prepared = :p"),
            {"p": encode_prepared(prepared[:2])},
        )
    report = db.loop().run_once()
    assert (report.records, report.posted, report.anomalies) == (3, 1, 1)


def test_a_failing_preparation_does_not_lose_the_batch(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-LIL-0042")

    def hsm_unavailable(_body: bytes) -> bytes:
        raise RuntimeError("CKR_DEVICE_REMOVED")

    outcome = receive_batch(
        vl_db.factory,
        gate.terminal_id,
        gate.batch([gate.record(CARD, ctr(1))]),
        KeyRing(gate),
        max_bytes=1 << 20,
        max_records=100,
        prepare=hsm_unavailable,
    )
    assert outcome.ack.status is AckStatus.ACCEPTED
    assert vl_db.scalar("SELECT count(*) FROM upload_bodies WHERE prepared IS NULL") == 1
    report = vl_db.loop().run_once()  # the loop prepares it itself
    assert (report.records, report.posted) == (1, 1)


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"format":"other/1","records":[]}', b'{"format":"x"}'],
)
def test_decode_prepared_refuses_what_is_not_a_preparation(data: bytes) -> None:
    with pytest.raises(PreparedMismatch):
        decode_prepared(data, [])


def test_decode_prepared_refuses_another_record_count() -> None:
    data = encode_prepared([["0" * 32, SAM_NONE, None, None, None, "P1-x"]])
    assert decode_prepared(data, [{}]) == [["0" * 32, SAM_NONE, None, None, None, "P1-x"]]
    with pytest.raises(PreparedMismatch):
        decode_prepared(data, [{}, {}])
    assert PREPARED_FORMAT.encode() in data


def test_migration_0005_moves_the_bodies_out_and_back(empty_db_url: str) -> None:
    upgrade(empty_db_url)  # the module's database may be at the head already
    downgrade(empty_db_url, "0004_tariffs")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM upload_batches"))
            conn.execute(
                text(
                    "INSERT INTO upload_batches (batch_id, terminal_id, body, body_sha256, "
                    "record_count, received_at) VALUES ('T:1-1', 'T', :b, 'x', 1, :t)"
                ),
                {"b": b"the bytes", "t": "2025-09-01 06:00:00"},
            )
        upgrade(empty_db_url, "0005_loop_storage")  # a later revision may follow it
        assert current(empty_db_url) == {"0005_loop_storage"}
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT body, prepared FROM upload_bodies")).all()
        assert [(bytes(body), prepared) for body, prepared in rows] == [(b"the bytes", None)]
        downgrade(empty_db_url, "0004_tariffs")
        with engine.connect() as conn:
            assert bytes(conn.execute(text("SELECT body FROM upload_batches")).scalar_one()) == (
                b"the bytes"
            )
        upgrade(empty_db_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM upload_bodies"))
            conn.execute(text("DELETE FROM upload_batches"))
    finally:
        engine.dispose()


def test_the_checkpointer_thread_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    engine = make_engine(url)
    try:
        checkpointer = SQLiteCheckpointer(engine, period_s=0.01, idle_s=0.05)
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
            assert checkpointer.keep_alive()
            for _ in range(50):
                conn.exec_driver_sql("INSERT INTO t VALUES (randomblob(4000))")
        checkpointer.keep_alive()
        checkpointer.wait_stopped()  # it stops by itself once idle, after a last checkpoint
        # The pool keeps the connection open (closing the last one would checkpoint by
        # itself). Read the database file alone (immutable: the WAL is ignored): the rows are
        # in it only if the thread copied them there.
        uri = f"file:{tmp_path / 'wal.db'}?immutable=1"
        with sqlite3.connect(uri, uri=True) as main_file_only:
            size = main_file_only.execute("SELECT count(*) FROM t").fetchone()[0]
        assert size == 50
    finally:
        engine.dispose()


def test_the_checkpointer_does_nothing_without_a_sqlite_file() -> None:
    engine = make_engine("sqlite://")
    try:
        checkpointer = SQLiteCheckpointer(engine)
        assert not checkpointer.usable and not checkpointer.keep_alive()
    finally:
        engine.dispose()


def _insert_tap(db: VLDatabase, seq: int, *, charged: bool) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO taps (terminal_id, terminal_seq, card_pseudonym, card_tx_counter, "
                "charged, status, kind, application, outcome, resolution, occurred_at, "
                "movements, sam_verified) VALUES ('T', :seq, 'P1-card', 77, :charged, 'x', "
                "'validation', 'plum', 'COMMITTED', 'card_close', :at, '[]', :charged)"
            ),
            {"seq": seq, "charged": charged, "at": T0},
        )


def test_the_card_index_lets_one_tap_per_card_session_be_charged(vl_db: VLDatabase) -> None:
    _insert_tap(vl_db, 1, charged=False)
    _insert_tap(vl_db, 2, charged=False)  # replays, forgeries: as many as come
    _insert_tap(vl_db, 3, charged=True)
    with pytest.raises(IntegrityError):
        _insert_tap(vl_db, 4, charged=True)
    assert vl_db.scalar("SELECT count(*) FROM taps WHERE card_pseudonym = 'P1-card'") == 3


def test_queries_by_card_read_the_card_index(vl_sqlite: VLDatabase) -> None:
    for sql in (
        "SELECT * FROM taps WHERE card_pseudonym = 'P'",
        "SELECT * FROM taps WHERE card_pseudonym = 'P' AND card_tx_counter = 1 AND charged = 1",
    ):
        plan = " ".join(str(row[-1]) for row in vl_sqlite.rows(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX uq_taps_card_session" in plan, plan


# -- card states kept between chunks ------------------------------------------------------------


def _outcome(db: VLDatabase) -> dict[str, list[tuple[object, ...]]]:
    """What the loop wrote, without row ids and processing times."""
    queries = {
        "taps": "SELECT terminal_id, terminal_seq, card_pseudonym, card_tx_counter, charged, "
        "status, movements FROM taps ORDER BY terminal_id, terminal_seq, card_tx_counter",
        "ledger": "SELECT entry_ref, line, account, amount, kind, reverses FROM ledger_entries "
        "ORDER BY entry_ref, line",
        "anomalies": "SELECT kind, terminal_id, terminal_seq, card_pseudonym, card_tx_counter, "
        "resolution FROM anomalies ORDER BY kind, terminal_id, terminal_seq, card_tx_counter",
        "states": "SELECT card_pseudonym, last_counter, purses, open_gaps FROM purse_states "
        "ORDER BY card_pseudonym",
        "gaps": "SELECT scope, subject, number, state, closed_by FROM gaps "
        "ORDER BY scope, subject, number",
    }
    return {name: [tuple(row) for row in db.rows(sql)] for name, sql in queries.items()}


def _mixed_uploads(db: VLDatabase) -> None:
    """Three cards through two gates, one batch per upload: chains, a late session, a replay."""
    gate_a, gate_b = TerminalSim("GATE-A"), TerminalSim("GATE-B", sam_serial=b"\x5a\0\0\x02")
    keys = KeyRing(gate_a, gate_b)
    cards = [bytes.fromhex(f"00000000000000{n:02X}") for n in (1, 2, 3)]
    balance = dict.fromkeys(cards, 5000)
    late = None
    for session in range(10, 16):
        for index, card in enumerate(cards):
            gate = gate_a if (session + index) % 2 else gate_b
            record = gate.sv_debit(card, session, balance[card])
            balance[card] -= 100
            if card == cards[0] and session == 12:
                late = (gate, record)  # uploaded at the end: a gap, then filled
                continue
            db.upload(keys, gate, gate.batch([record]))
    assert late is not None
    db.upload(keys, late[0], late[0].batch([late[1]]))
    replay = gate_a.sv_debit(cards[1], 15, 4500)  # the card's session 15 again
    db.upload(keys, gate_a, gate_a.batch([replay]))


def test_one_batch_per_chunk_gives_what_one_chunk_gives(vl_db: VLDatabase, tmp_path: Path) -> None:
    _mixed_uploads(vl_db)
    vl_db.loop(chunk_records=1).run_once()  # 20 chunks: card states carried in memory
    small = _outcome(vl_db)
    other = _other_database(vl_db, tmp_path)
    try:
        _mixed_uploads(other)
        other.loop(chunk_records=100_000).run_once()
        assert _outcome(other) == small
    finally:
        other.engine.dispose()
    assert [row[5] for row in small["taps"]].count(TapStatus.REPLAY) == 1
    kinds = {row[0] for row in small["anomalies"]}
    assert kinds == {"card_counter_gap", "replay", "sequence_gap"}


def test_a_loop_forgets_its_card_states_when_another_loop_committed(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-A")
    keys = KeyRing(gate)
    mine, theirs = vl_db.loop(chunk_records=1), vl_db.loop(chunk_records=1)
    vl_db.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 10, 1000)]))
    mine.run_once()  # remembers the card at session 10, 900 left
    vl_db.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 11, 900)]))
    theirs.run_once()  # another worker (process) moves it to session 11, 800 left
    vl_db.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 12, 800)]))
    mine.run_once()  # a stale memory would see a chain break and a replayed counter
    assert db_anomalies(vl_db) == []
    state = vl_db.scalar(
        "SELECT purses FROM purse_states WHERE card_pseudonym = :p", p=pseudonym_of(CARD)
    )
    assert json.loads(state) == {"wallet.sv": [ctr(12), 700]}


def test_a_failed_chunk_leaves_no_card_state_in_memory(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-A")
    keys = KeyRing(gate)
    loop = vl_db.loop(chunk_records=1)
    vl_db.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 10, 1000)]))
    loop.run_once()
    vl_db.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 11, 900)]))

    def crash(_self: object, *_args: object) -> None:
        raise RuntimeError("power cut during the flush")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("backend.validation.loop._Chunk._flush", crash)
        with pytest.raises(RuntimeError):
            loop.run_once()
    assert loop._cards == {}  # the memory is what this test is about
    loop.run_once()  # the batch is still pending: processed again, from the database
    assert db_anomalies(vl_db) == []
    assert vl_db.scalar("SELECT count(*) FROM taps WHERE status = 'posted'") == 2


def db_anomalies(db: VLDatabase) -> list[tuple[object, ...]]:
    return [tuple(row) for row in db.rows("SELECT kind, detail FROM anomalies")]


def _other_database(db: VLDatabase, tmp_path: Path) -> VLDatabase:
    """A second fresh database of the same kind as ``db``."""
    if db.dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'other.db'}"
        upgrade(url)
    else:
        url = fresh_postgres_database()
    engine = make_engine(url)
    return VLDatabase(url, engine, make_sessionmaker(engine), db.dialect, db.prepare_at_upload)


def test_a_new_sqlite_database_has_16_kib_pages(vl_sqlite: VLDatabase) -> None:
    assert vl_sqlite.scalar("PRAGMA page_size") == SQLITE_PAGE_SIZE == 16384


def test_a_loop_that_raced_another_one_redoes_its_chunk(vl_sqlite: VLDatabase) -> None:
    # SQLite: a chunk's reads come before its write lock, so another process's loop can
    # commit in between. Here it does so right after this loop read the generation.
    gate = TerminalSim("GATE-A")
    keys = KeyRing(gate)
    mine, theirs = vl_sqlite.loop(chunk_records=1), vl_sqlite.loop(chunk_records=1)
    theirs._lock = threading.Lock()  # as in another process (one lock per process)
    vl_sqlite.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 10, 1000)]))
    mine.run_once()  # remembers the card at session 10, 900 left
    vl_sqlite.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 11, 900)]))
    vl_sqlite.upload(keys, gate, gate.batch([gate.sv_debit(CARD, 12, 800)]))
    read = mine._read_generation
    raced: list[int] = []

    def read_then_race(session: Any) -> int | None:
        generation = read(session)
        if not raced:
            raced.append(1)
            theirs.run_once(max_chunks=1)  # session 11 committed by the other loop
        return generation

    mine._read_generation = read_then_race  # type: ignore[method-assign]
    report = mine.run_once()
    assert raced and report.posted == 1  # session 12, computed again from the database
    assert db_anomalies(vl_sqlite) == []
    state = vl_sqlite.scalar(
        "SELECT purses FROM purse_states WHERE card_pseudonym = :p", p=pseudonym_of(CARD)
    )
    assert json.loads(state) == {"wallet.sv": [ctr(12), 700]}


def test_batch_bytes_go_48_hours_after_processing_never_before(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-A")
    keys = KeyRing(gate)
    first = gate.batch([gate.record(CARD, ctr(1))])
    vl_db.upload(keys, gate, first)
    vl_db.loop(chunk_records=1).run_once(max_chunks=1)
    vl_db.upload(keys, gate, gate.batch([gate.record(CARD, ctr(2))]))  # pending
    now = datetime.now(UTC)
    with vl_db.engine.begin() as conn:  # processed 49 hours ago; both received long ago
        conn.execute(
            text("UPDATE upload_batches SET processed_at = :t WHERE processed_at IS NOT NULL"),
            {"t": now - timedelta(hours=49)},
        )
        conn.execute(
            text("UPDATE upload_batches SET received_at = :t"), {"t": now - timedelta(days=9)}
        )
    with vl_db.factory() as session, session.begin():
        assert purge_batch_bodies(session, now, timedelta(hours=72)) == 1  # capped at 48 h
    with vl_db.factory() as session, session.begin():
        assert purge_batch_bodies(session, now) == 0
    assert vl_db.scalar("SELECT count(*) FROM upload_bodies") == 1  # the pending one stays
    assert vl_db.loop().run_once().posted == 1
    again = vl_db.upload(keys, gate, first)  # a re-send is still recognised
    assert again.ack.status is AckStatus.DUPLICATE


def _record_signed_as(length: int, legacy: bool) -> dict[str, Any]:
    """A wire record whose signing bytes are ``length`` long, SAM-signed under the current PSO
    rule or, with ``legacy``, as a terminal signed before Calypso framing (raw up to 255)."""
    from card_schema.traceability import sam_trace_key, traceable_signature
    from card_schema.uploads.signing import (
        SIGNED_FIELDS,
        sam_signature_input,
        wire_record_signing_bytes,
    )
    from tests.backend.validation_fixtures import TRACE_MASTER

    record: dict[str, Any] = dict.fromkeys(SIGNED_FIELDS)
    record.update(
        terminal_id="G",
        terminal_seq=1,
        kind="x",
        application="plum",
        card_serial="01",
        card_tx_counter=1,
        occurred_at="2025-09-01T07:30:00.000Z",
        movements=[],
        product_code=None,
        station_id=None,
        school_uai="",
        written_event=None,
    )
    base = len(wire_record_signing_bytes(record))
    record["school_uai"] = "x" * (length - base)
    signed = wire_record_signing_bytes(record)
    assert len(signed) == length  # every record is above 199 bytes (field names alone)
    serial = bytes.fromhex("5A000001")
    key = sam_trace_key(TRACE_MASTER, serial)
    message = signed if legacy else sam_signature_input(signed)
    mac = traceable_signature(key, serial, 7, message)
    record["sam_signature"] = (serial + (7).to_bytes(3, "big") + mac).hex().upper()
    return record


@pytest.mark.parametrize(
    ("length", "legacy", "verified"),
    [
        (240, False, True),  # SHA-256 under the Calypso rule (more than 199 bytes)
        (240, True, True),  # stored before the change: signed raw, still verifiable
        (300, False, True),
        (300, True, False),  # above 255 the old rule hashed too: raw was never signed
    ],
)
def test_signatures_from_before_calypso_pso_framing_still_verify(
    length: int, legacy: bool, verified: bool
) -> None:
    from backend.validation.prepare import RecordPreparer
    from tests.backend.validation_fixtures import FakeKeys

    keys = FakeKeys()
    (prepared,) = RecordPreparer(keys, keys).prepare([_record_signed_as(length, legacy)])
    assert prepared[1] == (SAM_VERIFIED if verified else SAM_FORGED)
