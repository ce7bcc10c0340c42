"""A gate process for the SIGKILL test: one tap on the card image in DIRECTORY, killed at STEP.

Usage: ``python killable_gate.py DIRECTORY STEP SECONDS [action]`` — STEP is a step name of
``GateValidator`` (``none`` to run to the end), SECONDS the tap time after the test's Monday.
With ``action`` the gate holds an action list (kept in DIRECTORY/tables, signed with a fixed
test key so that a restarted process verifies it again) naming a carnet load for the card, and
its outbox in DIRECTORY/actions.db.
Prints the tap outcome, whether the barrier opened and the display on success.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import MONDAY, Clock
from gatekit import build_gate

from terminal.actions import ActionLists, ActionOutbox
from terminal.actions.writer import ActionWriter
from terminal.fares.signed import sign_envelope
from terminal.fares.store import TableStore

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # test only, fixed across processes
CARNET_ACTION = {
    "action_id": 9,
    "card_serial": "0000000012345678",
    "application": "plum",
    "kind": "load_contract",
    "params": {"product_code": 2, "duration_days": 365, "trips": 10},
}


def main() -> None:
    directory, step, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    rig = build_gate(directory, clock=Clock(MONDAY + timedelta(seconds=seconds)))
    if sys.argv[4:] == ["action"]:
        lists = ActionLists(KEY.public_key(), store=TableStore(directory / "tables"))
        if lists.version == 0:  # the first process; the restarted one reloads it from disk
            now = rig.clock()
            payload = {"actions": [CARNET_ACTION]}
            lists.offer(sign_envelope(KEY, "action_list", 1, now, payload), now)
        rig.gate.actions = ActionWriter(lists, ActionOutbox(directory / "actions.db"))

    def hook(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    rig.gate.step_hook = hook
    result = rig.tap()
    sys.stdout.write(f"{result.outcome.value} {result.accepted} {result.display}\n")
    rig.journal.close()


if __name__ == "__main__":
    main()
