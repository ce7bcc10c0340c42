"""Fixtures of the gate tests (card kit shared with the engine tests: ../engine/enginekit.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from gatekit import GateRig, build_gate


@pytest.fixture
def gate_rig(tmp_path: Path) -> Iterator[GateRig]:
    rig = build_gate(tmp_path)
    try:
        yield rig
    finally:
        rig.journal.close()
