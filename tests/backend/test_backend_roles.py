"""The role matrix: one test per forbidden action (each row of FORBIDDEN is its own test).

Each role does only what it must: a canteen till cannot load transit contracts, a terminal cannot
act as another terminal, an auditor reads but never changes, an agent cannot read the audit
trail, a terminal cannot call desk endpoints, an agent cannot call terminal endpoints, and nobody
unauthenticated gets anything.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import Auth, new_serial

HOLDER = {"family_name": "Martin", "given_name": "Léa", "birth_date": "2010-04-02"}
TRANSIT_PRODUCT = {
    "code": 7001,
    "fare_product_id": "plum_mensuel_roles",
    "name": "PLUM mensuel",
    "application": "plum",
    "amount_cents": 4500,
    "duration_days": 30,
}
WALLET_PRODUCT = {
    "code": 7002,
    "fare_product_id": "wallet_reload_roles",
    "name": "Rechargement porte-monnaie",
    "application": "wallet",
    "amount_cents": 0,
}


@pytest.fixture(scope="module")
def card(client: TestClient, auth: Auth) -> str:
    """A card with every application, and the products of the matrix."""
    holder = client.post("/api/v1/holders", json=HOLDER, headers=auth("agent")).json()
    serial = new_serial()
    body = {
        "holder_id": holder["id"],
        "serial": serial,
        "applications": ["plum", "wallet", "cursus", "employment"],
    }
    assert client.post("/api/v1/cards", json=body, headers=auth("agent")).status_code == 201
    for product in (TRANSIT_PRODUCT, WALLET_PRODUCT):
        client.post("/api/v1/products", json=product, headers=auth("supervisor"))
    return serial


# (who, method, path, json body or None, expected status, why)
FORBIDDEN: list[tuple[str, str, str, Any, int, str]] = [
    (
        "canteen",
        "POST",
        "/api/v1/products/terminal-loads",
        {"product_code": 7001},
        403,
        "a canteen till cannot load transit contracts",
    ),
    (
        "gate",
        "POST",
        "/api/v1/products/terminal-loads",
        {"product_code": 7002, "amount_cents": 500},
        403,
        "a gate sells nothing",
    ),
    (
        "inspector",
        "POST",
        "/api/v1/products/terminal-loads",
        {"product_code": 7001},
        403,
        "an inspector sells nothing",
    ),
    (
        "gate",
        "GET",
        "/api/v1/terminals/self",
        "as:canteen-0590001A-01",
        401,
        "a terminal cannot act as another terminal",
    ),
    (
        "gate",
        "POST",
        "/api/v1/personalisation",
        {"applications": ["plum"]},
        403,
        "only desk stations get wrapped card keys",
    ),
    ("auditor", "POST", "/api/v1/holders", HOLDER, 403, "an auditor cannot create holders"),
    (
        "auditor",
        "POST",
        "/api/v1/cards/{serial}/block",
        {"reason": "perdue"},
        403,
        "an auditor cannot block cards",
    ),
    (
        "auditor",
        "POST",
        "/api/v1/products/loads",
        {"product_code": 7001},
        403,
        "an auditor cannot sell",
    ),
    (
        "auditor",
        "POST",
        "/api/v1/products",
        {**TRANSIT_PRODUCT, "code": 7003},
        403,
        "an auditor cannot change the catalogue",
    ),
    (
        "auditor",
        "POST",
        "/api/v1/deny-lists/publish",
        None,
        403,
        "an auditor cannot publish deny-lists",
    ),
    ("auditor", "POST", "/api/v1/privacy/purge", None, 403, "an auditor cannot purge"),
    (
        "auditor",
        "POST",
        "/api/v1/terminals",
        {"terminal_id": "x1", "kind": "gate"},
        403,
        "an auditor cannot register terminals",
    ),
    (
        "auditor",
        "POST",
        "/api/v1/entitlements/school-aid",
        {
            "holder_id": 1,
            "school_year": "2025-2026",
            "purpose": "books",
            "funder": "region",
            "amount_cents": 100,
        },
        403,
        "an auditor cannot grant aid",
    ),
    ("agent", "GET", "/api/v1/audit", None, 403, "an agent cannot read the audit trail"),
    ("supervisor", "GET", "/api/v1/audit", None, 403, "a supervisor cannot read the audit trail"),
    (
        "agent",
        "POST",
        "/api/v1/terminals",
        {"terminal_id": "x2", "kind": "gate"},
        403,
        "an agent cannot register terminals",
    ),
    (
        "agent",
        "POST",
        "/api/v1/products",
        {**TRANSIT_PRODUCT, "code": 7004},
        403,
        "an agent cannot change the catalogue",
    ),
    (
        "agent",
        "POST",
        "/api/v1/auth/agents",
        {"username": "x", "password": "0123456789ab", "role": "supervisor"},
        403,
        "an agent cannot create accounts",
    ),
    (
        "agent",
        "GET",
        "/api/v1/deny-lists/full",
        None,
        403,
        "an agent cannot call terminal endpoints",
    ),
    (
        "gate",
        "GET",
        "/api/v1/cards/{serial}?reason=fraude",
        None,
        403,
        "a terminal cannot call desk endpoints",
    ),
    ("desk", "POST", "/api/v1/holders", HOLDER, 403, "a desk terminal is not an agent"),
    ("canteen", "GET", "/api/v1/audit", None, 403, "a terminal cannot read the audit trail"),
    (
        "none",
        "GET",
        "/api/v1/cards/{serial}?reason=fraude",
        None,
        401,
        "unauthenticated desk lookup",
    ),
    ("none", "GET", "/api/v1/deny-lists/full", None, 401, "unauthenticated deny-list"),
    ("none", "POST", "/api/v1/holders", HOLDER, 401, "unauthenticated change"),
    ("none", "GET", "/api/v1/audit", None, 401, "unauthenticated audit"),
]


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status", "why"),
    FORBIDDEN,
    ids=[row[5] for row in FORBIDDEN],
)
def test_forbidden(
    client: TestClient,
    auth: Auth,
    card: str,
    who: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    why: str,
) -> None:
    headers = dict(auth(who))
    if isinstance(body, str) and body.startswith("as:"):
        headers["X-Regioncard-Terminal"] = body.removeprefix("as:")
        body = None
    if (isinstance(body, dict) and "product_code" in body) or path.endswith("personalisation"):
        body = {**(body or {}), "card_serial": card}
    answer = client.request(method, path.format(serial=card), json=body, headers=headers)
    assert answer.status_code == status, (why, answer.text)
    assert answer.json()["message_fr"] and answer.json()["message_en"]


def test_allowed_counterparts_work(client: TestClient, auth: Auth, card: str) -> None:
    """The same actions succeed for the role that must do them (the matrix is not just 'deny')."""
    wallet = {"card_serial": card, "product_code": 7002, "amount_cents": 500}
    assert (
        client.post(
            "/api/v1/products/terminal-loads", json=wallet, headers=auth("canteen")
        ).status_code
        == 201
    )
    transit = {"card_serial": card, "product_code": 7001}
    assert (
        client.post(
            "/api/v1/products/terminal-loads", json=transit, headers=auth("desk")
        ).status_code
        == 201
    )
    assert (
        client.post("/api/v1/products/loads", json=transit, headers=auth("agent")).status_code
        == 201
    )
    assert client.get("/api/v1/audit", headers=auth("auditor")).status_code == 200
    assert (
        client.get(f"/api/v1/cards/{card}?reason=contrôle", headers=auth("auditor")).status_code
        == 200
    )
    assert client.get("/api/v1/deny-lists/full", headers=auth("gate")).status_code in (200, 404)
