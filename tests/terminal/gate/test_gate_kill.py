"""The gate process killed with SIGKILL at every step of a validation, then restarted.

A child process runs one tap (card and SAM images on disk, in-process readers: a private pcscd
would be too slow to restart for every case) and kills itself at one step; a fresh process then
taps the card again. Journal and card must agree: every session the card committed is journaled
COMMITTED, nothing is UNCERTAIN any more, and at most one trip was charged. The passenger is
never stuck: the killed tap never opened the barrier, so the restarted tap opens it — charging
(the card had not committed) or not (it had: « Bon voyage », recovered from the journal or, between
the commit and the barrier, from the gate's barrier log).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from enginekit import Rig, make_card

from card_schema.records import decode_record
from card_schema.uploads.records import TransactionState
from terminal.actions import ActionOutbox
from terminal.journal import Journal

SCRIPT = Path(__file__).with_name("killable_gate.py")
STEPS = (
    "select",
    "open_session",
    "resolve",
    "decide",
    "journal_begin",
    "sign",
    "close",
    "closed",
    "committed",
    "barrier",
)
# The close ratifies at once (P1 80, the reference's default): no ratification step.
CARD_COMMITTED = ("closed", "committed", "barrier")


def _run(
    directory: Path, step: str, seconds: float, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(directory), step, str(seconds), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_restart(tmp_path: Path, step: str) -> None:
    Rig(tmp_path).personalise(make_card(carnet_trips=5))
    killed = _run(tmp_path, step, 0)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restarted = _run(tmp_path, "none", 30)
    assert restarted.returncode == 0, restarted.stderr
    if step in CARD_COMMITTED:
        assert restarted.stdout.split() == ["recovered", "True", "Bon", "voyage"]
    else:
        assert restarted.stdout.split()[:2] == ["committed", "True"]
    image = Rig(tmp_path).image()
    trips = int.from_bytes(image.applications["plum"].records["counters"][0][:3], "big")
    events = [e for e in image.applications["plum"].records["events"] if any(e)]
    with Journal.open(tmp_path / "journal.db", "GATE-TEST-1") as journal:
        records = journal.records()
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert not [
        r for r in records if r.state in (TransactionState.UNCERTAIN, TransactionState.PENDING)
    ]
    assert trips == 4, "exactly one trip charged over the two taps"
    assert len(events) == 1
    assert len(committed) == 1, "the card's one session is journaled once"
    assert committed[0].intent.written_event == events[0]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_of_a_tap_with_an_action(tmp_path: Path, step: str) -> None:
    """A carnet bought online, written at the tap: killed anywhere, loaded once, one trip."""
    Rig(tmp_path).personalise(make_card())
    killed = _run(tmp_path, step, 0, "action")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restarted = _run(tmp_path, "none", 30, "action")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.split()[:2] in (["recovered", "True"], ["committed", "True"])
    image = Rig(tmp_path).image()
    serials = [
        decode_record("plum.contract", raw, tariff=0x0FF1)["ContractSerialNumber"]
        for raw in image.applications["plum"].records["contracts"]
        if any(raw)
    ]
    assert serials == [9], "the carnet written once"
    trips = int.from_bytes(image.applications["plum"].records["counters"][0][:3], "big")
    assert trips == 9, "ten trips loaded, exactly one taken"
    with Journal.open(tmp_path / "journal.db", "GATE-TEST-1") as journal:
        states = [r.state for r in journal.records()]
    assert states.count(TransactionState.COMMITTED) == 1
    assert TransactionState.UNCERTAIN not in states and TransactionState.PENDING not in states
    outbox = ActionOutbox(tmp_path / "actions.db")
    assert outbox.states() == {9: "committed"}, "confirmed once, with the committed session"
    outbox.close()
