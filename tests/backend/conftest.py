"""Fixtures of the backend tests: every API test runs on SQLite and on PostgreSQL.

- ``pg_cluster``: one throwaway PostgreSQL cluster for the whole run (backend/pgcluster.py); a
  fresh database per test module and per database kind.
- ``db_url``: parametrised ``sqlite`` / ``postgresql``, module scope, migrated to the head.
- ``keys``: a SoftHSM2 token with the backend keys (fixed demo master keys so tests can compare with
  card_schema's software computation), closed and the PKCS#11 module unloaded after the module so
  later tests (the SAM emulator's) can point SoftHSM2 at their own token.
- ``client`` / ``auth``: a TestClient on the app, agents of every role and registered terminals.

A missing PostgreSQL or SoftHSM2 skips, which is a failure in CI (tests/conftest.py).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from backend.app import create_app
from backend.auth.roles import AgentRole
from backend.auth.service import create_agent
from backend.db import make_engine, make_sessionmaker, transaction
from backend.errors import KeyStoreError
from backend.keys import softhsm
from backend.keys.service import KeyService, issuance_key_refs
from backend.migrate import upgrade
from backend.pgcluster import PostgresCluster, PostgresUnavailable, throwaway_cluster
from backend.settings import Settings

PASSWORD = "correct horse battery"
_db_numbers = itertools.count(1)


def demo_master_keys() -> dict[str, bytes]:
    """Fixed, obviously fake master keys (key n is byte n+1 repeated), plus the transport key."""
    keys = {ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(issuance_key_refs())}
    keys["desk.transport.v1"] = bytes([0xD5]) * 16
    return keys


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    try:
        with throwaway_cluster() as cluster:
            yield cluster
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")


def _fresh_pg_database(cluster: PostgresCluster) -> str:
    name = f"t{next(_db_numbers)}_{secrets.token_hex(3)}"
    admin = f"postgresql://{cluster.user}@127.0.0.1:{cluster.port}/{cluster.database}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{cluster.user}@127.0.0.1:{cluster.port}/{name}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A new, empty database of each kind for the module."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'backend.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return _fresh_pg_database(cluster)


@pytest.fixture(scope="module")
def db_url(empty_db_url: str) -> str:
    """A database of each kind, migrated to the head."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyService]:
    try:
        service = KeyService.for_tests(
            tmp_path_factory.mktemp("softhsm"), master_keys=demo_master_keys()
        )
    except KeyStoreError as exc:
        pytest.skip(f"no SoftHSM2: {exc}")
    try:
        yield service
    finally:
        service.close()
        softhsm.unload(service.library)


@dataclass
class Auth:
    """Headers of every kind of caller, and helpers for fresh serials."""

    agents: dict[str, dict[str, str]] = field(default_factory=dict)
    terminals: dict[str, dict[str, str]] = field(default_factory=dict)
    terminal_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    def __call__(self, who: str) -> dict[str, str]:
        """Headers for ``who``: an agent role or a terminal kind (``"none"``: no headers)."""
        if who == "none":
            return {}
        return self.agents.get(who) or self.terminals[who]


def new_serial() -> str:
    """A fresh 8-byte card serial (upper-case hex)."""
    return secrets.token_hex(8).upper()


@pytest.fixture(scope="module")
def app(db_url: str, keys: KeyService, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(
        database_url=db_url,
        var_dir=Path(tmp_path_factory.mktemp("var")),
        jwt_secret="test-secret-0123456789abcdef0123456789",
        auto_migrate=False,
        max_body_bytes=64 * 1024,
    )
    return create_app(settings, keys=keys)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.engine.dispose()


TERMINALS = {
    # kind -> (terminal id, station, school)
    "gate": ("gate-lille-flandres-01", 1001, None),
    "canteen": ("canteen-0590001A-01", None, "0590001A"),
    "desk": ("desk-lille-01", 1001, None),
    "bike_shelter": ("bike-lille-01", 1002, None),
    "inspector": ("inspector-07", None, None),
}


@pytest.fixture(scope="module")
def auth(app: FastAPI, client: TestClient) -> Auth:
    """Agents of every role (logged in through the API) and one registered terminal per kind."""
    result = Auth()
    with transaction(app.state.sessionmaker) as session:
        for role in AgentRole:
            create_agent(session, f"{role.value}1", PASSWORD, role)
    for role in AgentRole:
        answer = client.post(
            "/api/v1/auth/token", data={"username": f"{role.value}1", "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        result.agents[role.value] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    for n, (kind, (terminal_id, station, school)) in enumerate(TERMINALS.items()):
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        body: dict[str, Any] = {
            "terminal_id": terminal_id,
            "kind": kind,
            "station_id": station,
            "school_uai": school,
            "sam_serial": f"{0x5A000000 + n:08X}",
            "public_key": public.hex(),
        }
        answer = client.post("/api/v1/terminals", json=body, headers=result.agents["supervisor"])
        assert answer.status_code == 201, answer.text
        result.terminals[kind] = {
            "Authorization": f"Bearer {answer.json()['credential']}",
            "X-Regioncard-Terminal": terminal_id,
        }
        result.terminal_keys[kind] = private
    return result


def table_names(url: str) -> set[str]:
    """The tables of the database at ``url`` (migration tests)."""
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


__all__ = ["PASSWORD", "Auth", "make_sessionmaker", "new_serial"]
