"""Login throttling (per account and per client, 429 in French, audited) and token refresh.

Found by fuzzing: ``/auth/token`` accepted unlimited password guesses. The throttle's clock is a
fake one the test moves: nothing here waits.
"""

from __future__ import annotations

import jwt
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.auth.roles import AgentRole
from backend.auth.service import create_agent
from backend.auth.throttle import LoginThrottle
from backend.db import transaction
from tests.backend.conftest import PASSWORD, Auth


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _login(client: TestClient, user: str, password: str) -> object:
    return client.post("/api/v1/auth/token", data={"username": user, "password": password})


def _throttled_audits(client: TestClient, auth: Auth) -> list[dict[str, str]]:
    rows = client.get("/api/v1/audit", headers=auth("auditor")).json()
    return [row for row in rows if row["action"] == "auth.throttled"]


def test_repeated_failures_on_one_account_are_throttled_then_released(
    app: FastAPI, client: TestClient, auth: Auth
) -> None:
    clock = FakeClock()
    app.state.login_throttle = LoginThrottle(account_free=3, client_free=100, clock=clock)
    with transaction(app.state.sessionmaker) as session:
        create_agent(session, "throttled1", PASSWORD, AgentRole.AGENT)
    for _ in range(3):
        assert _login(client, "throttled1", "wrong password!").status_code == 401
    fourth = _login(client, "throttled1", "wrong password!")
    assert fourth.status_code == 401  # the 4th failure is counted and starts the delay
    blocked = _login(client, "throttled1", PASSWORD)  # even the right password waits
    assert blocked.status_code == 429, blocked.text
    body = blocked.json()
    assert body["error"] == "too_many_attempts"
    assert body["message_fr"].startswith("trop de tentatives de connexion : réessayez dans")
    assert int(blocked.headers["Retry-After"]) == 30
    assert len(_throttled_audits(client, auth)) >= 2  # blocked, then refused while blocked
    clock.now += 31
    assert _login(client, "throttled1", PASSWORD).status_code == 200
    # A success clears the account: three more free failures.
    for _ in range(3):
        assert _login(client, "throttled1", "wrong password!").status_code == 401
    assert _login(client, "throttled1", PASSWORD).status_code == 200


def test_one_client_trying_many_accounts_is_throttled(
    app: FastAPI, client: TestClient, auth: Auth
) -> None:
    clock = FakeClock()
    app.state.login_throttle = LoginThrottle(account_free=100, client_free=4, clock=clock)
    for n in range(5):
        assert _login(client, f"nobody{n}", "guess guess guess").status_code == 401
    answer = _login(client, "agent1", PASSWORD)
    assert answer.status_code == 429
    assert "réessayez" in answer.json()["message_fr"]
    clock.now += 31
    assert _login(client, "agent1", PASSWORD).status_code == 200


def test_a_valid_token_is_refreshed(app: FastAPI, client: TestClient, auth: Auth) -> None:
    app.state.login_throttle = LoginThrottle()
    answer = client.post("/api/v1/auth/refresh", headers=auth("agent"))
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "agent1"
    assert answer.json()["expires_in"] == 15 * 60
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert client.post("/api/v1/auth/refresh").status_code == 401
    assert client.post("/api/v1/auth/refresh", headers=auth("gate")).status_code == 403
