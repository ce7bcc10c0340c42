"""Agents log in with OAuth2 password flow (JWT); terminals with their credential and header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.auth.roles import AgentRole
from backend.auth.security import hash_password, issue_agent_token, verify_password
from backend.db import transaction
from backend.errors import AuthenticationFailed, UnknownTerminalKey
from backend.terminals import service as terminals
from card_schema.uploads.batch import key_id
from tests.backend.conftest import PASSWORD, Auth


def test_password_hash_is_salted_and_checked() -> None:
    first, second = hash_password("a long password"), hash_password("a long password")
    assert first != second and first.startswith("scrypt$")
    verify_password("a long password", first)
    with pytest.raises(AuthenticationFailed):
        verify_password("another password", first)


def test_login_gives_a_short_lived_bearer_token(client: TestClient, auth: Auth) -> None:
    answer = client.post("/api/v1/auth/token", data={"username": "agent1", "password": PASSWORD})
    body = answer.json()
    assert answer.status_code == 200 and body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 3600
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "agent1" and me.json()["role"] == "agent"


def test_wrong_password_is_401_with_a_clear_message(client: TestClient, auth: Auth) -> None:
    answer = client.post("/api/v1/auth/token", data={"username": "agent1", "password": "nope"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "mot de passe incorrect" in answer.json()["message"]


def test_expired_and_forged_tokens_are_refused(client: TestClient, auth: Auth) -> None:
    secret = "test-secret-0123456789abcdef0123456789"
    old = issue_agent_token(
        secret,
        "agent1",
        AgentRole.AGENT,
        now=datetime.now(UTC) - timedelta(hours=2),
        lifetime=timedelta(minutes=15),
    )
    answer = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {old}"})
    assert answer.status_code == 401 and "expired" in answer.json()["message_en"]
    forged = issue_agent_token(
        "another secret entirely, 32 bytes+",
        "supervisor1",
        AgentRole.SUPERVISOR,
        now=datetime.now(UTC),
        lifetime=timedelta(minutes=15),
    )
    answer = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401


def test_terminal_sees_itself(client: TestClient, auth: Auth) -> None:
    answer = client.get("/api/v1/terminals/self", headers=auth("gate"))
    assert answer.status_code == 200
    assert answer.json()["kind"] == "gate" and len(answer.json()["keys"]) == 1


def test_terminal_public_key_lookup_and_revocation(app: FastAPI, auth: Auth) -> None:
    public = auth.terminal_keys["canteen"].public_key()
    kid = key_id(public)
    terminal_id = auth.terminals["canteen"]["X-Regioncard-Terminal"]
    with transaction(app.state.sessionmaker) as session:
        found = terminals.terminal_public_key(session, terminal_id, kid.lower())
        raw = found.public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert raw == public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        with pytest.raises(UnknownTerminalKey):
            terminals.terminal_public_key(session, "gate-lille-flandres-01", kid)
        rotated = Ed25519PrivateKey.generate().public_key()
        new = terminals.add_terminal_key(
            session, terminal_id, rotated.public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        terminals.revoke_terminal_key(session, terminal_id, new.key_id)
        with pytest.raises(UnknownTerminalKey):
            terminals.terminal_public_key(session, terminal_id, new.key_id)
        terminals.terminal_public_key(session, terminal_id, kid)  # the old key still works


def test_rotated_terminal_credential_replaces_the_old_one(client: TestClient, auth: Auth) -> None:
    answer = client.post(
        "/api/v1/terminals",
        json={"terminal_id": "gate-tmp-9", "kind": "gate"},
        headers=auth("supervisor"),
    )
    old = {
        "Authorization": f"Bearer {answer.json()['credential']}",
        "X-Regioncard-Terminal": "gate-tmp-9",
    }
    assert client.get("/api/v1/terminals/self", headers=old).status_code == 200
    new = client.post("/api/v1/terminals/gate-tmp-9/credential", headers=auth("supervisor"))
    assert client.get("/api/v1/terminals/self", headers=old).status_code == 401
    fresh = {**old, "Authorization": f"Bearer {new.json()['credential']}"}
    assert client.get("/api/v1/terminals/self", headers=fresh).status_code == 200
    client.post("/api/v1/terminals/gate-tmp-9/deactivate", headers=auth("supervisor"))
    assert client.get("/api/v1/terminals/self", headers=fresh).status_code == 401
