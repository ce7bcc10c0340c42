"""Helpers of the desk tests: a live backend (uvicorn in a thread), the key ceremony, blank cards.

The key ceremony: one key file holds the demo master keys and the desk transport key; the
backend's SoftHSM2 token imports all of them (``KeyService.for_tests``), factory cards get their
keys from the master keys (``hardware.personalise.new_card``), and the desk SAM holds **only** the
transport key.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from backend.app import create_app
from backend.auth.roles import AgentRole
from backend.auth.service import create_agent
from backend.db import transaction
from backend.keys import softhsm
from backend.keys.service import KeyService
from backend.migrate import upgrade
from backend.settings import Settings
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.personalise import new_card
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import TRACE_KEY, TRANSPORT_KEY_LABEL, KeyFileStore, demo_key_refs

PASSWORD = "correct horse battery"
DESK_ID = "GUICHET-AMIENS-1"
SAM_SERIAL = bytes.fromhex("5AD00001")
TRANSPORT = bytes([0xD5]) * 16
PRODUCTS = [
    # code, id, name, application, price, duration, trips
    (10, "pass_mois_1z", "Pass mois 1 zone", "plum", 4500, 30, None),
    (2, "carnet_10", "Carnet 10 voyages", "plum", 1450, None, 10),
    (900, "rechargement", "Rechargement porte-monnaie", "wallet", 0, None, None),
]


def master_keys() -> dict[str, bytes]:
    """Fixed, obviously fake master keys (key n is n+1 repeated) and the transport key."""
    keys = {ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())}
    keys[TRANSPORT_KEY_LABEL] = TRANSPORT
    return keys


def factory_keys() -> KeyFileStore:
    """The card factory's master keys (no transport key)."""
    return KeyFileStore({k: v for k, v in master_keys().items() if k != TRANSPORT_KEY_LABEL})


def desk_sam(*, journaling: bool = False, serial: bytes = SAM_SERIAL) -> EmulatedSAM:
    """A desk SAM: the transport key, no card master key; with ``journaling``, also the
    traceability key that signs the journal records (as every terminal SAM holds)."""
    keys = {TRANSPORT_KEY_LABEL: TRANSPORT}
    if journaling:
        keys[TRACE_KEY.label] = master_keys()[TRACE_KEY.label]
    return EmulatedSAM(KeyFileStore(keys), serial)


def blank_card(directory: Path, serial: bytes | None = None) -> tuple[EmulatedCard, CardImageStore]:
    """A factory card (keys diversified, nothing else) stored in ``directory``."""
    serial = serial or bytes.fromhex("00000000") + secrets.token_bytes(4)
    directory.mkdir(parents=True, exist_ok=True)
    store = CardImageStore(directory / f"{serial.hex()}.json")
    store.commit(new_card(serial, factory_keys()))
    return EmulatedCard(store), store


def register_terminal(client: httpx.Client, supervisor: dict[str, str], **fields: Any) -> str:
    """Register a terminal (``POST /api/v1/terminals``, as a supervisor); its credential."""
    made = client.post("/api/v1/terminals", json=fields, headers=supervisor)
    assert made.status_code == 201, made.text
    return str(made.json()["credential"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveBackend:
    """A backend served by uvicorn on 127.0.0.1, with an agent, a desk and a catalogue."""

    url: str
    app: Any
    agent_headers: dict[str, str]
    supervisor_headers: dict[str, str]
    desk_headers: dict[str, str]
    credential: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def register_terminal(self, **fields: Any) -> str:
        """Register a terminal with ``fields`` (``terminal_id``, ``kind``...); its credential."""
        with self.client() as client:
            return register_terminal(client, self.supervisor_headers, **fields)

    def agent(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.request(method, path, headers=self.agent_headers, **kwargs)

    def holder(self, family: str = "Martin", given: str = "Léa") -> int:
        answer = self.agent(
            "POST", "/api/v1/holders", json={"family_name": family, "given_name": given}
        )
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    def job(self, **body: Any) -> dict[str, Any]:
        answer = self.agent("POST", "/api/v1/desk/jobs", json={"desk_terminal_id": DESK_ID, **body})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def job_state(self, job_id: int) -> dict[str, Any]:
        answer = self.agent("GET", f"/api/v1/desk/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def actions(self, serial: str) -> list[dict[str, Any]]:
        answer = self.agent("GET", f"/api/v1/action-lists/cards/{serial}")
        assert answer.status_code == 200, answer.text
        return list(answer.json())


@contextmanager
def serving(app: Any, port: int, *, name: str, start_timeout_s: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a thread until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def live_backend(directory: Path, **overrides: Any) -> Iterator[LiveBackend]:
    """Migrate a SQLite database, open a token with the ceremony's keys, serve the app
    (``overrides``: more :class:`Settings` fields, e.g. ``desk_idle_lock_seconds``)."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'backend.db'}"
    upgrade(url)
    keys = KeyService.for_tests(directory / "hsm", master_keys=master_keys())
    settings = Settings(
        database_url=url,
        var_dir=directory / "var",
        jwt_secret="desk-test-secret-0123456789abcdef0123",
        auto_migrate=False,
        **overrides,
    )
    app = create_app(settings, keys=keys)
    with transaction(app.state.sessionmaker) as session:
        create_agent(session, "agent1", PASSWORD, AgentRole.AGENT)
        create_agent(session, "super1", PASSWORD, AgentRole.SUPERVISOR)
    try:
        with serving(app, free_port(), name="uvicorn-desk") as base:
            with httpx.Client(base_url=base, timeout=10) as client:
                headers = {}
                for name in ("agent1", "super1"):
                    token = client.post(
                        "/api/v1/auth/token", data={"username": name, "password": PASSWORD}
                    )
                    assert token.status_code == 200, token.text
                    headers[name] = {"Authorization": f"Bearer {token.json()['access_token']}"}
                credential = register_terminal(
                    client,
                    headers["super1"],
                    terminal_id=DESK_ID,
                    kind="desk",
                    sam_serial=SAM_SERIAL.hex(),
                )
                for code, fare_id, name, app_name, price, days, trips in PRODUCTS:
                    made = client.post(
                        "/api/v1/products",
                        json={
                            "code": code,
                            "fare_product_id": fare_id,
                            "name": name,
                            "application": app_name,
                            "amount_cents": price,
                            "duration_days": days,
                            "trips": trips,
                        },
                        headers=headers["super1"],
                    )
                    assert made.status_code == 201, made.text
            yield LiveBackend(
                url=base,
                app=app,
                agent_headers=headers["agent1"],
                supervisor_headers=headers["super1"],
                desk_headers={
                    "Authorization": f"Bearer {credential}",
                    "X-Regioncard-Terminal": DESK_ID,
                },
                credential=credential,
            )
    finally:
        app.state.engine.dispose()
        keys.close()
        softhsm.unload(keys.library)
