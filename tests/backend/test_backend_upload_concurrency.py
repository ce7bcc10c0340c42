"""Forty terminals upload at the same moment to a served backend (``regioncard backend serve``).

Each upload used to hold a pooled connection through its authentication while the upload service
asked the same pool for another: from 16 uploads at once every request waited out the pool
timeout (30 s) and got a plain-text 500. Here the real command serves the API (uvicorn, its loop
in a second process) on SQLite and on PostgreSQL; the terminals post over HTTP, released
together by a barrier. Every batch must be acknowledged and stored once, and the loop process
must then process all of them. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.db import make_engine, make_sessionmaker
from backend.migrate import upgrade
from tests.backend.validation_fixtures import (
    TerminalSim,
    ctr,
    fresh_postgres_database,
    register_gate,
)

ROOT = Path(__file__).resolve().parents[2]
TERMINALS = 40
RECORDS = 25
DEADLINE_S = 120.0  # a bound on each wait, not a measured time


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(condition: object, what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'regioncard.db'}"
        upgrade(url)
        return url
    return fresh_postgres_database()


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[str]:
    """``regioncard backend serve`` on ``database_url``; yields its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "REGIONCARD_VAR_DIR": str(tmp_path / "var"),
        "REGIONCARD_DATABASE_URL": database_url,
        "REGIONCARD_JWT_SECRET": "concurrency-test-secret-0123456789abcdef",
    }
    # --init: serve checks its data folder and refuses a missing PKCS#11 token (cli branch).
    command = [
        sys.executable,
        "-m",
        "regioncard",
        "backend",
        "serve",
        "--init",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _healthy(url) or server.poll() is not None, "server up")
        assert server.poll() is None, "regioncard backend serve exited"
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_forty_terminals_at_once_are_all_acked_and_stored_once(
    database_url: str, served: str
) -> None:
    engine = make_engine(database_url)
    try:
        factory = make_sessionmaker(engine)
        gates = [
            TerminalSim(f"GATE-CONC-{n:02d}", sam_serial=(0x5A100000 + n).to_bytes(4, "big"))
            for n in range(TERMINALS)
        ]
        headers = {}
        with factory() as session, session.begin():
            for gate in gates:
                headers[gate.terminal_id] = register_gate(session, gate)
        bodies = {
            gate.terminal_id: gate.batch(
                [gate.record(bytes.fromhex(f"{n:08X}{i:08X}"), ctr(1)) for i in range(RECORDS)]
            )
            for n, gate in enumerate(gates)
        }
        barrier = threading.Barrier(TERMINALS)
        answers: dict[str, tuple[int, bytes]] = {}

        def upload(terminal_id: str) -> None:
            request = urllib.request.Request(
                f"{served}/api/v1/uploads",
                data=bodies[terminal_id],
                method="POST",
                headers={"Content-Type": "application/json", **headers[terminal_id]},
            )
            barrier.wait()
            try:
                with urllib.request.urlopen(request, timeout=DEADLINE_S) as answer:
                    answers[terminal_id] = (answer.status, answer.read())
            except urllib.error.HTTPError as exc:
                answers[terminal_id] = (exc.code, exc.read())

        threads = [threading.Thread(target=upload, args=(g.terminal_id,)) for g in gates]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(answers) == TERMINALS
        failed = {t: a for t, a in answers.items() if a[0] != 200}
        assert not failed, f"{len(failed)} uploads failed, e.g. {next(iter(failed.values()))}"
        statuses = {json.loads(body)["status"] for _, body in answers.values()}
        assert statuses == {"accepted"}

        def count(sql: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(sql)).scalar() or 0)

        assert count("SELECT count(*) FROM upload_batches") == TERMINALS
        assert count("SELECT count(DISTINCT batch_id) FROM upload_batches") == TERMINALS
        # The loop runs in its own process: it ends by processing every batch, once.
        _wait_until(
            lambda: count("SELECT count(*) FROM upload_batches WHERE processed_at IS NULL") == 0,
            "the loop process processed every batch",
        )
        assert count("SELECT count(*) FROM taps") == TERMINALS * RECORDS
    finally:
        engine.dispose()


def test_no_free_pooled_connection_is_a_503_in_json(tmp_path: Path) -> None:
    """A pool timeout (every connection busy) answers the documented 503, not a plain 500."""
    from fastapi.testclient import TestClient

    from backend.app import DATABASE_RETRY_AFTER_S, create_app
    from backend.settings import Settings
    from tests.backend.validation_fixtures import FakeKeys

    url = f"sqlite:///{tmp_path / 'regioncard.db'}"
    upgrade(url)
    engine = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    gate = TerminalSim("GATE-POOL-01")
    with make_sessionmaker(engine)() as session, session.begin():
        headers = register_gate(session, gate)
    settings = Settings(var_dir=tmp_path, database_url=url, auto_migrate=False, jwt_secret="s" * 40)
    app = create_app(settings, keys=FakeKeys(), engine=engine)
    app.state.validation_auto = False
    body = gate.batch([gate.sv_debit(bytes.fromhex("00000000000000AA"), 1, 1000)])
    upload = {**headers, "Content-Type": "application/json"}
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            held = engine.connect()  # the pool's only connection
            try:
                answer = client.post("/api/v1/uploads", content=body, headers=upload)
            finally:
                held.close()
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "database_unavailable"
            assert answer.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
            # The connection back in the pool, the terminal's retry is stored.
            again = client.post("/api/v1/uploads", content=body, headers=upload)
            assert again.status_code == 200 and again.json()["status"] == "accepted"
    finally:
        engine.dispose()
