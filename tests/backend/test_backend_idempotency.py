"""Sales and loads take an ``Idempotency-Key``: a resent sale is answered again, not resold."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.backend.conftest import Auth, new_serial

WALLET = {
    "code": 7102,
    "fare_product_id": "wallet_reload_idem",
    "name": "Rechargement porte-monnaie",
    "application": "wallet",
    "amount_cents": 0,
}


@pytest.fixture(scope="module")
def card(client: TestClient, auth: Auth) -> str:
    holder = client.post("/api/v1/holders", json={"anonymous": True}, headers=auth("agent")).json()
    serial = new_serial()
    body = {"holder_id": holder["id"], "serial": serial, "applications": ["plum", "wallet"]}
    assert client.post("/api/v1/cards", json=body, headers=auth("agent")).status_code == 201
    assert client.post("/api/v1/products", json=WALLET, headers=auth("supervisor")).is_success
    return serial


def _pending(client: TestClient, auth: Auth, card: str) -> int:
    actions = client.get(f"/api/v1/action-lists/cards/{card}", headers=auth("agent")).json()
    return sum(1 for a in actions if a["status"] == "pending")


@pytest.mark.parametrize(
    ("who", "path"),
    [("agent", "/api/v1/products/loads"), ("canteen", "/api/v1/products/terminal-loads")],
)
def test_a_resent_sale_is_answered_again_not_sold_twice(
    client: TestClient, auth: Auth, card: str, who: str, path: str
) -> None:
    sale: dict[str, Any] = {"card_serial": card, "product_code": 7102, "amount_cents": 500}
    headers = {**auth(who), "Idempotency-Key": f"{who}-vente-0001"}
    before = _pending(client, auth, card)
    first = client.post(path, json=sale, headers=headers)
    assert first.status_code == 201, first.text
    again = client.post(path, json=sale, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _pending(client, auth, card) == before + 1  # one sale, one write queued
    # The same key for another sale is refused, not replayed.
    other = client.post(path, json={**sale, "amount_cents": 700}, headers=headers)
    assert other.status_code == 409, other.text
    assert "déjà utilisée" in other.json()["message_fr"]
    # Without a key, each request is a sale.
    plain = auth(who)
    assert client.post(path, json=sale, headers=plain).status_code == 201
    assert client.post(path, json=sale, headers=plain).status_code == 201
    assert _pending(client, auth, card) == before + 3


def test_keys_are_per_caller_and_checked(client: TestClient, auth: Auth, card: str) -> None:
    sale = {"card_serial": card, "product_code": 7102, "amount_cents": 300}
    key = {"Idempotency-Key": "shared-key-42"}
    a = client.post("/api/v1/products/loads", json=sale, headers={**auth("agent"), **key})
    b = client.post("/api/v1/products/loads", json=sale, headers={**auth("supervisor"), **key})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]  # another caller's key is not this caller's
    bad = client.post(
        "/api/v1/products/loads", json=sale, headers={**auth("agent"), "Idempotency-Key": "a b"}
    )
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["message_fr"]


def test_a_failed_sale_does_not_burn_its_key(client: TestClient, auth: Auth, card: str) -> None:
    headers = {**auth("agent"), "Idempotency-Key": "retry-after-error"}
    unknown = {"card_serial": card, "product_code": 65000, "amount_cents": 300}
    assert client.post("/api/v1/products/loads", json=unknown, headers=headers).status_code == 404
    good = {"card_serial": card, "product_code": 7102, "amount_cents": 300}
    # Another body under the key is fine: the failed request left no trace.
    answer = client.post("/api/v1/products/loads", json=good, headers=headers)
    assert answer.status_code == 201, answer.text
