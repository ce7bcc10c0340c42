"""The holder page browser tests reuse the desk's live-backend kit and the holder API test kit."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "terminal" / "desk"))
sys.path.insert(0, str(TESTS / "backend" / "holderpage"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
