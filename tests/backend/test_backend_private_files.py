"""Files with personal data or keys are 0600; the auto-created SoftHSM2 token has random PINs.

Before: the SQLite database and the terminal journal followed the umask (world-readable under
the usual 022), and the auto-created backend token had the PIN ``1234``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.db import make_engine
from backend.keys import softhsm
from backend.migrate import upgrade
from terminal.journal.store import Journal


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "regioncard.db"
    upgrade(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM holders").all()
        wal = Path(f"{db}-wal")
        assert wal.exists()
        assert _mode(wal) == 0o600
    engine.dispose()
    assert _mode(db) == 0o600


def test_a_terminal_journal_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal.open(path, "GATE-LIL-0042", clock=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    try:
        assert _mode(path) == 0o600
    finally:
        journal.close()


@pytest.mark.integration
def test_the_auto_created_token_has_random_pins_stored_owner_only(tmp_path: Path) -> None:
    if softhsm.find_library() is None:
        pytest.skip("SoftHSM2 missing")
    # A fresh process: SoftHSM2 reads its configuration once per process.
    script = (
        "import sys; from pathlib import Path; from backend.settings import Settings; "
        "from backend.keys.service import KeyService; "
        "k = KeyService.open(Settings(var_dir=Path(sys.argv[1]))); k.close()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGIONCARD_", "SOFTHSM"))}
    first = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "tests et démonstrations seulement" in first.stderr
    pins = tmp_path / "softhsm" / "pins.json"
    assert _mode(pins) == 0o600
    saved = json.loads(pins.read_text())
    assert saved["user_pin"] not in ("1234", "") and len(saved["user_pin"]) >= 16
    assert saved["so_pin"] != saved["user_pin"]
    # The next start reads the PIN back and opens the same token, without a new warning.
    again = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "tests et démonstrations" not in again.stderr
