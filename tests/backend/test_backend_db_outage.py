"""The backend's PostgreSQL goes away and comes back: callers get a 503 in words, then service.

The app reaches the session's real PostgreSQL through a TCP relay the test can cut (every open
connection reset, new ones refused) and restore, as when the database server restarts or the
network between them fails. While cut, every request that needs the database (a terminal's
credential check, an upload, an agent's login) is answered 503 with a French message and a
``Retry-After``, never a bare 500; once restored, the pool reconnects by itself (pre-ping) and the
terminal's retried upload is stored exactly once.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from backend.app import DATABASE_RETRY_AFTER_S, create_app
from backend.auth.roles import AgentRole
from backend.auth.service import create_agent
from backend.db import make_engine, make_sessionmaker, transaction
from backend.migrate import upgrade
from backend.pgcluster import PostgresCluster
from backend.settings import Settings
from tests.backend.validation_fixtures import FakeKeys, TerminalSim, register_gate

pytestmark = pytest.mark.integration

CARD = bytes.fromhex("0000000012345678")
PASSWORD = "correct horse battery"


class Relay:
    """A TCP relay from a local port to ``target``, which the test can cut and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="db-relay", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Reset every relayed connection and refuse new ones (the database is gone)."""
        self._open.clear()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sockets.clear()

    def restore(self) -> None:
        """Relay new connections again (the database is back)."""
        self._open.set()

    def close(self) -> None:
        self.cut()
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()  # connection refused, as far as the driver can tell
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def relay(pg_cluster: PostgresCluster) -> Iterator[Relay]:
    relay = Relay(pg_cluster.port)
    yield relay
    relay.close()


@pytest.fixture
def relayed_url(pg_cluster: PostgresCluster, relay: Relay) -> str:
    """A new migrated PostgreSQL database, as the app reaches it: through the relay."""
    name = f"outage_{secrets.token_hex(3)}"
    admin = f"postgresql://{pg_cluster.user}@127.0.0.1:{pg_cluster.port}/{pg_cluster.database}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{pg_cluster.user}@127.0.0.1:{relay.port}/{name}"
    upgrade(url)
    return url


def _unavailable(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error"] == "database_unavailable"
    assert body["message_fr"] == (
        "base de données momentanément indisponible : réessayez dans un instant"
    )
    assert answer.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)


def test_database_gone_then_back(relayed_url: str, relay: Relay, tmp_path: Path) -> None:
    engine = make_engine(relayed_url)
    settings = Settings(
        var_dir=tmp_path,
        database_url=relayed_url,
        auto_migrate=False,
        jwt_secret="test-secret-" + "x" * 32,
    )
    app = create_app(settings, keys=FakeKeys(), engine=engine)
    app.state.validation_auto = False
    gate = TerminalSim("GATE-LIL-0042")
    with transaction(make_sessionmaker(engine)) as session:
        create_agent(session, "agent1", PASSWORD, AgentRole.AGENT)
        headers = register_gate(session, gate)
    body = gate.batch([gate.sv_debit(CARD, 1, 1000)])
    login = {"username": "agent1", "password": PASSWORD}
    upload = {**headers, "Content-Type": "application/json"}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/deny-lists/full", headers=headers).status_code < 500
        relay.cut()
        try:
            _unavailable(client.get("/api/v1/deny-lists/full", headers=headers))
            _unavailable(client.post("/api/v1/uploads", content=body, headers=upload))
            _unavailable(client.post("/api/v1/auth/token", data=login))
        finally:
            relay.restore()
        stored = client.post("/api/v1/uploads", content=body, headers=upload)  # the retry
        assert stored.status_code == 200, stored.text
        assert stored.json()["status"] == "accepted"
        again = client.post("/api/v1/uploads", content=body, headers=upload)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert client.post("/api/v1/auth/token", data=login).status_code == 200
    engine.dispose()
