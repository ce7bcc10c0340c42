"""Issuance: holders, cards, applications, loads, aid, rights, block-and-replace, action lists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.actions.service import confirm_action
from backend.cards.service import update_known_balance
from backend.db import transaction
from backend.errors import Conflict
from terminal.fares.signed import SignedEnvelope, verify_envelope
from tests.backend.conftest import Auth, new_serial

PRODUCTS = [
    {
        "code": 8101,
        "fare_product_id": "plum_mensuel_iss",
        "name": "Mensuel",
        "application": "plum",
        "amount_cents": 4500,
        "duration_days": 30,
    },
    {
        "code": 8102,
        "fare_product_id": "wallet_iss",
        "name": "Porte-monnaie",
        "application": "wallet",
        "amount_cents": 0,
    },
]


@pytest.fixture(scope="module")
def catalogue(client: TestClient, auth: Auth) -> None:
    for product in PRODUCTS:
        assert (
            client.post("/api/v1/products", json=product, headers=auth("supervisor")).status_code
            == 201
        )


def _holder(client: TestClient, auth: Auth, **fields: Any) -> int:
    body = fields or {"family_name": "Durand", "given_name": "Inès", "birth_date": "2009-09-01"}
    answer = client.post("/api/v1/holders", json=body, headers=auth("agent"))
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _card(client: TestClient, auth: Auth, holder_id: int, apps: list[str]) -> str:
    serial = new_serial()
    answer = client.post(
        "/api/v1/cards",
        json={"holder_id": holder_id, "serial": serial, "applications": apps},
        headers=auth("agent"),
    )
    assert answer.status_code == 201, answer.text
    return serial


def test_anonymous_holder_has_no_personal_data(client: TestClient, auth: Auth) -> None:
    holder_id = _holder(client, auth, anonymous=True)
    seen = client.get(f"/api/v1/holders/{holder_id}?reason=guichet", headers=auth("agent")).json()
    assert seen["anonymous"] is True
    assert all(
        seen[f] is None for f in ("family_name", "given_name", "birth_date", "email", "phone")
    )


def test_issue_card_and_manage_applications(client: TestClient, auth: Auth) -> None:
    serial = _card(client, auth, _holder(client, auth), ["plum"])
    added = client.post(
        f"/api/v1/cards/{serial}/applications",
        json={"application": "cursus"},
        headers=auth("agent"),
    )
    assert added.json()["applications"] == ["cursus", "plum"]
    again = client.post(
        f"/api/v1/cards/{serial}/applications",
        json={"application": "cursus"},
        headers=auth("agent"),
    )
    assert again.status_code == 409
    removed = client.delete(f"/api/v1/cards/{serial}/applications/plum", headers=auth("agent"))
    assert removed.json()["applications"] == ["cursus"]
    dup = client.post(
        "/api/v1/cards",
        json={"holder_id": 1, "serial": serial, "applications": ["plum"]},
        headers=auth("agent"),
    )
    assert dup.status_code == 409


def test_load_creates_a_sale_and_a_pending_write(
    client: TestClient, auth: Auth, catalogue: None, app: FastAPI
) -> None:
    serial = _card(client, auth, _holder(client, auth), ["plum", "wallet"])
    sale = client.post(
        "/api/v1/products/loads",
        json={"card_serial": serial, "product_code": 8101},
        headers=auth("agent"),
    )
    assert sale.status_code == 201, sale.text
    action = sale.json()["action"]
    assert action["kind"] == "load_contract" and action["status"] == "pending"
    no_amount = client.post(
        "/api/v1/products/loads",
        json={"card_serial": serial, "product_code": 8102},
        headers=auth("agent"),
    )
    assert no_amount.status_code == 422
    # The gate receives the transit write in a signed action list; the canteen till does not.
    public = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(client.get("/api/v1/deny-lists/public-key").json()["public_key"])
    )
    listed = client.get("/api/v1/action-lists/current", headers=auth("gate")).json()
    envelope = SignedEnvelope.from_json(json.dumps(listed))
    from datetime import UTC, datetime, timedelta

    verify_envelope(
        envelope, public, kinds={"action_list"}, now=datetime.now(UTC), max_age=timedelta(days=1)
    )
    assert action["id"] in [a["action_id"] for a in envelope.payload["actions"]]
    canteen = client.get("/api/v1/action-lists/current", headers=auth("canteen")).json()
    assert action["id"] not in [a["action_id"] for a in canteen["payload"]["actions"]]
    # Confirmed once by the card counter; the same again is a no-op; another counter is refused.
    with transaction(app.state.sessionmaker) as session:
        confirm_action(session, serial, action["id"], 41)
        confirm_action(session, serial, action["id"], 41)
    with transaction(app.state.sessionmaker) as session, pytest.raises(Conflict):
        confirm_action(session, serial, action["id"], 42)
    after = client.get("/api/v1/action-lists/current", headers=auth("gate")).json()
    assert action["id"] not in [a["action_id"] for a in after["payload"]["actions"]]


def test_school_aid_per_year_and_purpose_is_queued_on_cursus_cards(
    client: TestClient, auth: Auth
) -> None:
    holder_id = _holder(client, auth)
    serial = _card(client, auth, holder_id, ["cursus", "plum"])
    body = {
        "holder_id": holder_id,
        "school_year": "2025-2026",
        "purpose": "canteen",
        "funder": "departement-59",
        "amount_cents": 12000,
    }
    answer = client.post("/api/v1/entitlements/school-aid", json=body, headers=auth("agent"))
    assert answer.status_code == 201, answer.text
    (queued,) = answer.json()["actions"]
    assert queued["card_serial"] == serial and queued["params"]["purse"] == "cursus.canteen_aid"
    assert (
        client.post("/api/v1/entitlements/school-aid", json=body, headers=auth("agent")).status_code
        == 409
    )
    other = {**body, "purpose": "books"}
    assert (
        client.post(
            "/api/v1/entitlements/school-aid", json=other, headers=auth("agent")
        ).status_code
        == 201
    )
    canteen = client.get("/api/v1/action-lists/current", headers=auth("canteen")).json()
    assert queued["id"] in [a["action_id"] for a in canteen["payload"]["actions"]]


def test_employment_right_goes_to_employment_cards(client: TestClient, auth: Auth) -> None:
    holder_id = _holder(client, auth)
    serial = _card(client, auth, holder_id, ["employment"])
    body = {
        "holder_id": holder_id,
        "partner": "france-travail",
        "right_code": 12,
        "valid_from": "2025-09-01",
        "valid_to": "2026-08-31",
        "amount_cents": 3000,
    }
    answer = client.post("/api/v1/entitlements/employment-rights", json=body, headers=auth("agent"))
    assert answer.status_code == 201, answer.text
    assert [a["card_serial"] for a in answer.json()["actions"]] == [serial]


def test_block_and_replace_moves_balances_and_contracts(
    client: TestClient, auth: Auth, catalogue: None, app: FastAPI
) -> None:
    holder_id = _holder(client, auth)
    old = _card(client, auth, holder_id, ["plum", "wallet", "cursus"])
    client.post(
        "/api/v1/products/loads",
        json={"card_serial": old, "product_code": 8101},
        headers=auth("agent"),
    )
    with transaction(app.state.sessionmaker) as session:
        # Calypso counters count down: 0xFFFFF0 is a later session than 0xFFFFF5.
        update_known_balance(session, old, "wallet.sv", 1250, 0xFFFFF1)
        update_known_balance(session, old, "cursus.sport_aid", 4000, 0xFFFFF0)
        update_known_balance(session, old, "wallet.sv", 9999, 0xFFFFF5)  # an older session: ignored
    new = new_serial()
    answer = client.post(
        f"/api/v1/cards/{old}/replace",
        json={"reason": "carte perdue", "new_serial": new},
        headers=auth("agent"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["old"]["status"] == "replaced" and body["old"]["replaced_by"] == new
    assert body["new"]["applications"] == ["cursus", "plum", "wallet"]
    moved = {
        (a["kind"], a["params"].get("purse"), a["params"].get("amount")) for a in body["moved"]
    }
    assert ("move_balance", "wallet.sv", 1250) in moved
    assert ("move_balance", "cursus.sport_aid", 4000) in moved
    assert any(a["kind"] == "load_contract" for a in body["moved"])
    entries = client.get("/api/v1/deny-lists/entries", headers=auth("auditor")).json()
    assert old in [e["card_serial"] for e in entries]
    again = client.post(
        f"/api/v1/cards/{old}/replace",
        json={"reason": "x" * 5, "new_serial": new_serial()},
        headers=auth("agent"),
    )
    assert again.status_code == 409
    blocked_load = client.post(
        "/api/v1/products/loads",
        json={"card_serial": old, "product_code": 8101},
        headers=auth("agent"),
    )
    assert blocked_load.status_code == 409
