"""The till process killed with SIGKILL at every point of a split-payment meal, then restarted.

The meal is 3,80 € paid 3,20 € from the canteen aid and 0,60 € from the wallet: two secure
sessions. A child process (``killable_till.py``: card image, SAM counter and journal on disk,
in-process readers) serves it and sends itself SIGKILL at one point: right after each card APDU
(the card executed it, the till never saw the answer) and at each journaling step of both
sessions (``journal_begin``, ``sign``, ``close``, ``closed``, ``committed``). Then:

- what the dead process left is consistent: each session is on the card entirely or not at all,
  the journal agrees with the card (COMMITTED only if on the card, ABORTED only if not), and at
  a journaling step the journal and the card are exactly what that step means (a begun intent
  survives the kill as PENDING);
- a fresh process turns exactly those PENDING records into UNCERTAIN at open and serves the
  pupil's next two taps; in the end there is one meal, one aid debit, one wallet debit, both
  sessions journaled COMMITTED, nothing undecided, money journaled = money taken, every SAM
  signature counter used once, and the pupil served exactly once, or, killed after both journal
  commits (before « Bon appétit »), told « Repas déjà pris » with this till and the time of
  the paid meal (``assert_final(killed=True)``, docs/canteen.md "Recovery").

Two process starts per case (about 0,3 s each when this was written): no need for a fork.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from canteen_kit import (
    SERVING,
    SPLIT_MEAL_APDUS,
    TERMINAL_ID,
    TillRig,
    assert_before_or_after,
    assert_final,
    assert_journal_agrees,
    card_state,
    reference_meal,
    split_meal_card,
)
from killable_till import CARD_FILE, SESSION_STEPS, Run

from card_schema.uploads.records import JournalRecord, Resolution, TransactionState
from terminal.canteen.reasons import MealReason
from terminal.engine.sam import TraceableSignature
from terminal.journal.store import Journal

SCRIPT = Path(__file__).with_name("killable_till.py")
SESSIONS = ("cursus", "wallet")  # in the order the till runs them
STEPS = tuple(f"{session}:{step}" for session in SESSIONS for step in SESSION_STEPS)
KILL_POINTS = tuple(f"apdu:{i}" for i in range(SPLIT_MEAL_APDUS)) + STEPS


def _run(
    directory: Path, kill: str, first_minute: int, taps: int
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(directory), kill, str(first_minute), str(taps)],
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )


class _Disk:
    """The journal as the dead process left it (read-only handle: no PENDING recovery)."""

    def __init__(self, directory: Path) -> None:
        self.journal = Journal.open(directory / "till.journal", TERMINAL_ID, owner=False)


def test_the_kill_points_are_every_step_of_both_sessions(tmp_path: Path) -> None:
    seen: list[str] = []
    reference_meal(tmp_path, seen.append)
    assert tuple(seen) == STEPS


def _expected_at_step(kill: str, records: list[JournalRecord], on_card: dict[str, bool]) -> None:
    """At a journaling step, the journal and the card are exactly what the step means."""
    killed_session, step = kill.split(":")
    for session in SESSIONS:
        mine = [r for r in records if r.intent.application == session]
        earlier = SESSIONS.index(session) < SESSIONS.index(killed_session)
        if earlier:  # the session before the killed one is over
            assert [r.state for r in mine] == [TransactionState.COMMITTED]
            assert on_card[session]
        elif session != killed_session or step == "journal_begin":  # nothing begun yet
            assert mine == []
            assert not on_card[session]
        else:
            state = TransactionState.COMMITTED if step == "committed" else TransactionState.PENDING
            assert [r.state for r in mine] == [state], "the begun intent survived the kill"
            assert on_card[session] == (step in ("closed", "committed"))


@pytest.mark.parametrize("kill", KILL_POINTS)
def test_till_sigkilled_then_restarted(tmp_path: Path, kill: str) -> None:
    card = split_meal_card(tmp_path / CARD_FILE)
    killed = _run(tmp_path, kill, 0, 1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()

    # What the dead process left on disk.
    state = card_state(card)
    assert_before_or_after(state)
    disk = _Disk(tmp_path)
    records = disk.journal.records()
    assert_journal_agrees(disk, state)  # type: ignore[arg-type]
    disk.journal.close()
    on_card = {"cursus": len(state.meals) == 1, "wallet": len(state.wallet_debits) == 1}
    if kill in STEPS:
        _expected_at_step(kill, records, on_card)
    pending = tuple(r.seq for r in records if r.state is TransactionState.PENDING)
    paid_and_journaled = [r.state for r in records] == [TransactionState.COMMITTED] * 2

    # A fresh process: the pupil taps again, and again.
    restarted = _run(tmp_path, "none", 1, 2)
    assert restarted.returncode == 0, restarted.stderr.decode()
    run: Run = pickle.loads(restarted.stdout)
    assert run.recovered == pending, "the fresh process found what the dead one left PENDING"
    first, second = (r.reason for r in run.results)
    if paid_and_journaled:  # nothing left to do: the exception of assert_final(killed=True)
        assert first is MealReason.ALREADY_SERVED
    else:  # the first tap after the restart finishes the meal and serves
        assert first in SERVING, first
    assert second is MealReason.ALREADY_SERVED

    rig = TillRig(tmp_path, card)
    try:
        assert_final(rig, run.results, killed=True)
        # A session the till saw commit is signed by the SAM; one decided from the card at a
        # later tap is not (docs/journal.md). The SAM counter lives on disk: no signature number
        # is issued twice, even by a process that died after the signature.
        committed = [r for r in rig.journal.records() if r.state is TransactionState.COMMITTED]
        for record in committed:
            signed = record.resolution is Resolution.CARD_CLOSE
            assert signed or record.resolution is Resolution.RECOVERED_FROM_CARD, record
            assert (record.sam_signature is not None) == signed, record
        counters = [
            TraceableSignature.from_bytes(r.sam_signature).counter
            for r in committed
            if r.sam_signature is not None
        ]
        assert len(set(counters)) == len(counters)
        assert max(counters) < rig.sam.counter
    finally:
        rig.close()
