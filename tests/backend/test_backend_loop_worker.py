"""The validation loop as a dedicated worker: full chunks, a bounded wait, a clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from backend.validation.loop import LoopReport
from card_schema.uploads.batch import AckStatus
from tests.backend.validation_fixtures import (
    KeyRing,
    TerminalSim,
    VLDatabase,
    ctr,
    vl_db,
    vl_sqlite,
)

__all__ = ["vl_db", "vl_sqlite"]  # the fixtures, imported for pytest

ROOT = Path(__file__).resolve().parents[2]


def _upload(db: VLDatabase, gate: TerminalSim, keys: KeyRing, cards: range) -> None:
    records = [gate.record(card.to_bytes(8, "big"), ctr(1)) for card in cards]
    assert db.upload(keys, gate, gate.batch(records)).ack.status is AckStatus.ACCEPTED


def _until(condition: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the worker did not get there"
        time.sleep(0.01)


def test_a_stopped_worker_drains_what_is_pending(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-LIL-0042")
    keys = KeyRing(gate)
    _upload(vl_db, gate, keys, range(1, 4))
    _upload(vl_db, gate, keys, range(4, 6))
    stop = threading.Event()
    stop.set()
    report = vl_db.loop(chunk_records=1000).serve(stop, linger_s=3600)
    assert (report.batches, report.records, report.posted) == (2, 5, 5)
    assert vl_db.loop().pending() == 0


def test_the_worker_waits_for_a_full_chunk_then_takes_it(vl_sqlite: VLDatabase) -> None:
    gate = TerminalSim("GATE-LIL-0042")
    keys = KeyRing(gate)
    loop = vl_sqlite.loop(chunk_records=6)
    chunks: list[LoopReport] = []
    stop = threading.Event()
    worker = threading.Thread(
        target=loop.serve, args=(stop,), kwargs={"linger_s": 3600, "on_chunk": chunks.append}
    )
    worker.start()
    try:
        _upload(vl_sqlite, gate, keys, range(1, 4))
        # Three records pending, six make a chunk, and the linger is an hour: the worker has
        # looked many times (it polls every 10 ms) and must still be waiting.
        time.sleep(0.3)
        assert loop.pending_records() == 3 and chunks == []
        _upload(vl_sqlite, gate, keys, range(4, 7))
        # The chunk's report reaches on_chunk after its commit empties the queue: wait for both.
        _until(lambda: loop.pending_records() == 0 and len(chunks) >= 1)
        assert [(c.batches, c.records) for c in chunks] == [(2, 6)]
    finally:
        stop.set()
        worker.join()


def test_a_quiet_worker_takes_a_partial_chunk_after_the_linger(vl_sqlite: VLDatabase) -> None:
    gate = TerminalSim("GATE-LIL-0042")
    keys = KeyRing(gate)
    loop = vl_sqlite.loop(chunk_records=5000)
    stop = threading.Event()
    worker = threading.Thread(target=loop.serve, args=(stop,), kwargs={"linger_s": 0.05})
    worker.start()
    try:
        _upload(vl_sqlite, gate, keys, range(1, 3))
        _until(lambda: loop.pending_records() == 0)
        assert vl_sqlite.scalar("SELECT count(*) FROM taps WHERE status = 'posted'") == 2
    finally:
        stop.set()
        worker.join()


def test_regioncard_backend_loop_once_processes_the_pending_batches(
    vl_sqlite: VLDatabase, tmp_path: Path
) -> None:
    vl_sqlite.prepare_at_upload = True  # as the app's upload endpoint stores them
    gate = TerminalSim("GATE-LIL-0042")
    _upload(vl_sqlite, gate, KeyRing(gate), range(1, 4))
    env = {
        **os.environ,
        "REGIONCARD_VAR_DIR": str(tmp_path / "var"),
        "REGIONCARD_DATABASE_URL": vl_sqlite.url,
    }
    # The data folder (its token) is made by migrate: the loop never creates one.
    migrated = subprocess.run(
        [str(Path(sys.executable).parent / "regioncard"), "backend", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    result = subprocess.run(
        [str(Path(sys.executable).parent / "regioncard"), "backend", "loop", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 enregistrement(s) traité(s)" in result.stdout
    assert vl_sqlite.scalar("SELECT count(*) FROM taps WHERE status = 'posted'") == 3
