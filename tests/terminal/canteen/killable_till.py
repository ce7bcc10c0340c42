"""A till process for the SIGKILL tests: taps on the card image in DIRECTORY, maybe killed.

Usage: ``python killable_till.py DIRECTORY KILL FIRST_MINUTE TAPS``

- DIRECTORY holds what survives the process: the card image (``card.json``), the SAM's
  signature counter (``sam-counter.json``) and the journal (``till.journal``, SQLite WAL).
- KILL is where the process sends itself SIGKILL during its first tap: ``apdu:N`` right after the
  card executed its APDU ``N`` (0-based; the answer never reaches the till), ``cursus:STEP`` or
  ``wallet:STEP`` at a step of that session's journaling (:data:`SESSION_STEPS`, as the till's
  ``step_hook`` names them), or ``none``.
- The taps are at the test's lunch time plus FIRST_MINUTE, FIRST_MINUTE + 1, ... minutes.

A process that is not killed writes a pickled :class:`Run` (its tap results and the journal
records it found PENDING at open) to stdout and closes its journal.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

# This folder (the canteen kit) and the repository this file is in, ahead of the editable
# install, which points at one checkout whichever copy of the tests runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from canteen_builders import LUNCH_TIME
from canteen_kit import Clock, TillRig

from terminal.canteen.till import TapResult

SESSION_STEPS = ("journal_begin", "sign", "close", "closed", "committed")
CARD_FILE = "card.json"


@dataclass
class Run:
    """What a till process that was not killed did."""

    results: list[TapResult]
    recovered: tuple[int, ...]  # journal sequences found PENDING at open (now UNCERTAIN)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at(point: str) -> Callable[[object], None]:
    """A hook (card APDU index or step name) that kills this process at ``point``."""

    def hook(where: object) -> None:
        if f"apdu:{where}" == point or where == point:
            _die()

    return hook


def serve(directory: Path, kill: str, first_minute: int, taps: int) -> Run:
    """Serve ``taps`` taps, one minute apart; the first one dies at ``kill`` (unless ``none``)."""
    clock = Clock(LUNCH_TIME + timedelta(minutes=first_minute))
    rig = TillRig(directory, directory / CARD_FILE, clock=clock)
    results = []
    for tap in range(taps):
        clock.now = LUNCH_TIME + timedelta(minutes=first_minute + tap)
        hook = _kill_at(kill if tap == 0 else "none")
        rig.insert(fault_hook=hook)
        rig.till.step_hook = hook
        results.append(rig.till.serve())
    recovered = rig.journal.recovered
    rig.close()
    return Run(results, recovered)


def main() -> None:
    directory, kill = Path(sys.argv[1]), sys.argv[2]
    run = serve(directory, kill, int(sys.argv[3]), int(sys.argv[4]))
    sys.stdout.buffer.write(pickle.dumps(run))


if __name__ == "__main__":
    # Through the module's own name, so that the pickled Run is ``killable_till.Run``.
    from killable_till import main as killable_main

    killable_main()
