"""A gate process for the SIGKILL test: one tap on the card image in DIRECTORY, killed at STEP.

Usage: ``python killable_gate.py DIRECTORY STEP SECONDS`` — STEP is a step name of
``GateValidator`` (``none`` to run to the end), SECONDS the tap time after the test's Monday.
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

from enginekit import MONDAY, Clock
from gatekit import build_gate


def main() -> None:
    directory, step, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    rig = build_gate(directory, clock=Clock(MONDAY + timedelta(seconds=seconds)))

    def hook(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    rig.gate.step_hook = hook
    result = rig.tap()
    sys.stdout.write(f"{result.outcome.value} {result.accepted} {result.display}\n")
    rig.journal.close()


if __name__ == "__main__":
    main()
