"""The journal survives SIGKILL at every step of the write-ahead protocol (issue 4).

A child process runs a small terminal (``killable_terminal.py``) against a file-backed card and a
directory "backend", and kills itself with SIGKILL at one checkpoint; the test then restarts the
terminal in its own process (the card comes back for more taps, everything is uploaded) and checks
that the card, the journal and the backend agree: no committed session lost, none counted twice,
no record in two different batches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from killable_terminal import (
    CARD_SERIAL,
    DEVICE_KEY,
    FARE,
    INITIAL_BALANCE,
    PLAN,
    FileCard,
    restart,
)

from card_schema.uploads.batch import Batch, verify_batch
from card_schema.uploads.records import Resolution, TransactionState
from terminal.journal.store import Journal

HELPER = Path(__file__).with_name("killable_terminal.py")
REPO = Path(__file__).resolve().parents[3]
CHILD_TIMEOUT_S = 30

# Every checkpoint of one session, for the three fates of PLAN (ok, refused, lost response).
# ``in_*`` steps are the instant just before the SQL COMMIT of that journal operation.
OK_STEPS = [
    "before_begin",
    "in_begin",
    "after_begin",
    "after_card_close",
    "in_commit",
    "after_commit",
    "in_store_batch",
    "after_batches_stored",
    "before_send",
    "after_backend_received",
    "in_mark_acked",
    "after_upload",
]
KILL_POINTS = (
    [(0, step) for step in OK_STEPS]
    + [(1, step) for step in ("after_begin", "after_card_refusal", "in_abort", "after_abort")]
    + [(2, step) for step in ("after_card_close", "in_mark_uncertain", "after_mark_uncertain")]
    # tx 3 is the next tap of the card after the lost response: its resolution is a kill point.
    + [(3, step) for step in ("in_resolve", "before_begin", "after_card_close", "in_commit")]
)
assert PLAN[:4] == ("ok", "refused", "lost_response", "ok")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _run_child(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HELPER), str(directory), *args],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )


def check_agreement(directory: Path, journal: Journal) -> None:
    """Card, journal and backend agree; nothing lost, nothing twice."""
    card = FileCard(directory / "card.json")
    history = card.history()
    records = journal.records()
    committed = [r for r in records if r.state is TransactionState.COMMITTED]

    assert journal.undecided() == [], "every session is decided once the card came back"
    # Nothing lost, nothing twice: the committed records are exactly the card's sessions.
    assert sorted(r.intent.card_tx_counter for r in committed) == sorted(
        h["counter"] for h in history
    )
    events = {h["counter"]: h["event"] for h in history}
    for record in committed:
        assert record.intent.written_event is not None
        assert record.intent.written_event.hex() == events[record.intent.card_tx_counter]
    assert INITIAL_BALANCE - card.balance() == FARE * len(committed)
    assert -sum(m.amount for r in committed for m in r.intent.movements) == FARE * len(committed)
    seqs = [r.seq for r in records]
    assert seqs == sorted(set(seqs)) and seqs[-1] == journal.last_seq()

    # The backend: one batch id is one byte string; one record is in one batch only.
    bodies: dict[str, bytes] = {}
    batch_of_seq: dict[int, str] = {}
    uploaded: dict[int, TransactionState] = {}
    for path in sorted((directory / "backend").iterdir()):
        body = path.read_bytes()
        batch: Batch = verify_batch(body, DEVICE_KEY.public_key())
        assert bodies.setdefault(batch.batch_id, body) == body, "a batch id re-sent with new bytes"
        for record in batch.records:
            assert batch_of_seq.setdefault(record.seq, batch.batch_id) == batch.batch_id
            uploaded[record.seq] = record.state
    assert uploaded == {r.seq: r.state for r in records}, "every decided record reached the backend"
    card_sessions = [
        r.intent.card_tx_counter for r in committed if uploaded[r.seq] is TransactionState.COMMITTED
    ]
    assert len(card_sessions) == len(set(card_sessions)) == len(history)
    assert journal.unuploaded_count() == 0


def test_the_plan_runs_to_the_end_without_a_kill(tmp_path: Path) -> None:
    result = _run_child(tmp_path)
    assert result.returncode == 0, result.stderr
    journal = restart(tmp_path)
    try:
        check_agreement(tmp_path, journal)
        recovered = [r for r in journal.records() if r.resolution is Resolution.RECOVERED_FROM_CARD]
        assert [r.seq for r in recovered] == [3], (
            "the lost close response is recovered, not re-charged"
        )
    finally:
        journal.close()


@pytest.mark.parametrize(("kill_tx", "kill_step"), KILL_POINTS)
def test_sigkill_at_every_step_then_restart(tmp_path: Path, kill_tx: int, kill_step: str) -> None:
    result = _run_child(tmp_path, "--kill-step", kill_step, "--kill-tx", str(kill_tx))
    assert result.returncode == -signal.SIGKILL, (
        f"child did not die at {kill_step} of session {kill_tx}: {result.stderr}"
    )
    journal = restart(tmp_path)
    try:
        check_agreement(tmp_path, journal)
    finally:
        journal.close()


@pytest.mark.parametrize("lines_before_kill", [2, 9, 17, 26, 38])
def test_sigkill_from_outside_at_an_arbitrary_instant(
    tmp_path: Path, lines_before_kill: int
) -> None:
    """The parent kills the child while it runs on: the kill lands wherever the child is."""
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(tmp_path), "--announce"],
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        for _ in range(lines_before_kill):
            if not child.stdout.readline() or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
        returncode = child.wait(timeout=CHILD_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=CHILD_TIMEOUT_S)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert returncode in (0, -signal.SIGKILL)
    journal = restart(tmp_path)
    try:
        check_agreement(tmp_path, journal)
    finally:
        journal.close()


def test_a_second_owner_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    journal = restart(tmp_path, more_taps=1)
    try:
        with pytest.raises(Exception, match="already open"):
            Journal.open(tmp_path / "journal.db", "GATE-LIL-0042")
        assert journal.records(card_serial=CARD_SERIAL)
    finally:
        journal.close()
