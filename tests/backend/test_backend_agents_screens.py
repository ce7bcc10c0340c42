"""Issue 12 on the API, SQLite and PostgreSQL: what the desk page and the back office rely on.

Holders (validation, duplicates, search by birth date / serial / postcode, editing), French field
errors, block and supervisor-only unblock, a desk job's card ``issuing`` until written and its
sales recorded only when written, retry, the catalogue's price history, anomaly filters and
resolution, per-merchant reconciliation, clearing statements, the back office's own endpoints and
who may call them. The pages themselves: tests/desk_browser/.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.audit.models import AuditEntry
from backend.db import transaction
from backend.ledger.models import LedgerEntry
from backend.products.models import Sale
from backend.validation.models import Anomaly
from tests.backend.conftest import TERMINALS, Auth, new_serial

DESK = TERMINALS["desk"][0]
JOBS = "/api/v1/desk/jobs"
DAY = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue(client: TestClient, auth: Auth) -> None:
    for code, fare_id, app, price in (
        (110, "pass_i12", "plum", 4500),
        (910, "sv_i12", "wallet", 0),
    ):
        answer = client.post(
            "/api/v1/products",
            json={
                "code": code,
                "fare_product_id": fare_id,
                "name": fare_id,
                "application": app,
                "amount_cents": price,
            },
            headers=auth("supervisor"),
        )
        assert answer.status_code in (201, 409), answer.text


def new_holder(client: TestClient, auth: Auth, **fields: Any) -> dict[str, Any]:
    body = {"family_name": "Garnier", "given_name": "Tom", **fields}
    answer = client.post("/api/v1/holders", json=body, headers=auth("agent"))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def audit_reasons(app: FastAPI, action: str, subject: str) -> list[str]:
    with transaction(app.state.sessionmaker) as session:
        return list(
            session.scalars(
                select(AuditEntry.reason).where(
                    AuditEntry.action == action, AuditEntry.subject == subject
                )
            )
        )


# -- holders -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"birth_date": "2999-01-01"}, "birth_date", "date de naissance dans le futur"),
        ({"birth_date": "1899-12-31"}, "birth_date", "date de naissance antérieure à 1900"),
        ({"family_name": "   "}, "family_name", "nom vide"),
        ({"given_name": "\t"}, "given_name", "prénom vide"),
    ],
)
def test_holder_refusals_are_french_and_name_the_field(
    client: TestClient, auth: Auth, fields: dict[str, str], field: str, message: str
) -> None:
    body = {"family_name": "Garnier", "given_name": "Tom", **fields}
    answer = client.post("/api/v1/holders", json=body, headers=auth("agent"))
    assert answer.status_code == 422
    assert answer.json()["message_fr"] == message
    assert answer.json()["fields"] == [{"field": field, "message_fr": message}]


def test_a_probable_duplicate_is_reported_at_creation(client: TestClient, auth: Auth) -> None:
    first = new_holder(client, auth, family_name="Duplessis", birth_date="2010-05-01")
    assert first["possible_duplicates"] == []
    second = new_holder(
        client, auth, family_name=" duplessis ", given_name="TOM", birth_date="2010-05-01"
    )
    assert [d["id"] for d in second["possible_duplicates"]] == [first["id"]]
    assert second["family_name"] == "duplessis"  # surrounding spaces removed
    other_day = new_holder(client, auth, family_name="Duplessis", birth_date="2010-05-02")
    assert other_day["possible_duplicates"] == []


def test_search_by_birth_date_serial_and_postcode_is_audited(
    client: TestClient, auth: Auth, app: FastAPI
) -> None:
    made = new_holder(
        client,
        auth,
        family_name="Marchand",
        birth_date="2007-02-03",
        postal_address="12 place Foch, 62300 Lens",
    )
    serial = new_serial()
    card = client.post(
        "/api/v1/cards",
        json={"holder_id": made["id"], "serial": serial, "applications": ["plum"]},
        headers=auth("agent"),
    )
    assert card.status_code == 201, card.text
    for params in (
        {"birth_date": "2007-02-03"},
        {"card_serial": serial.lower()},
        {"postcode": "62300"},
        {"family_name": "march", "postcode": "62300"},
    ):
        found = client.get(
            "/api/v1/holders",
            params={**params, "reason": "test de recherche"},
            headers=auth("agent"),
        )
        assert found.status_code == 200, found.text
        assert made["id"] in [h["id"] for h in found.json()], params
        assert all(h["birth_date"] for h in found.json() if h["id"] == made["id"])
    none = client.get(
        "/api/v1/holders",
        params={"postcode": "59000", "card_serial": serial, "reason": "test"},
        headers=auth("agent"),
    )
    assert none.json() == []  # every criterion must match
    empty = client.get("/api/v1/holders", params={"reason": "test"}, headers=auth("agent"))
    assert empty.status_code == 422 and "nom, une date de naissance" in empty.json()["message_fr"]
    bad = client.get(
        "/api/v1/holders", params={"postcode": "8000", "reason": "test"}, headers=auth("agent")
    )
    assert bad.status_code == 422
    assert bad.json()["fields"] == [{"field": "postcode", "message_fr": "format incorrect"}]
    assert audit_reasons(app, "holder.search", f"card:{serial}") == ["test de recherche"]


def test_holder_details_are_edited_partially_and_audited(
    client: TestClient, auth: Auth, app: FastAPI
) -> None:
    made = new_holder(client, auth, family_name="Perrin", phone="+33 6 00 00 00 00")
    path = f"/api/v1/holders/{made['id']}"
    changed = client.patch(path, json={"given_name": " Théo "}, headers=auth("agent"))
    assert changed.status_code == 200, changed.text
    assert changed.json()["given_name"] == "Théo"
    assert changed.json()["phone"] == "+33 6 00 00 00 00"  # not sent: kept
    future = client.patch(path, json={"birth_date": "2999-01-01"}, headers=auth("agent"))
    assert future.status_code == 422 and future.json()["fields"][0]["field"] == "birth_date"
    assert client.patch(path, json={"family_name": "X"}, headers=auth("auditor")).status_code == 403
    assert audit_reasons(app, "holder.update", f"holder:{made['id']}") == [
        "modification : given_name"
    ]


def test_validation_errors_carry_no_pydantic_english(client: TestClient, auth: Auth) -> None:
    answer = client.post(
        JOBS,
        json={"desk_terminal_id": DESK, "wallet_reload_cents": True, "holder_id": "x"},
        headers=auth("agent"),
    )
    assert answer.status_code == 422
    body = answer.json()
    assert "Input should" not in body["message_fr"] and "Field" not in body["message_fr"]
    assert body["message_fr"].startswith("requête invalide — ")
    assert {"field": "holder_id", "message_fr": "nombre entier attendu"} in body["fields"]
    price = client.post(
        "/api/v1/products",
        json={
            "code": 120,
            "fare_product_id": "neg",
            "name": "neg",
            "application": "plum",
            "amount_cents": -1,
        },
        headers=auth("supervisor"),
    )
    assert price.status_code == 422
    assert price.json()["fields"] == [
        {"field": "amount_cents", "message_fr": "doit être au moins 0"}
    ]


# -- block, unblock ----------------------------------------------------------------------------
def test_block_then_unblock_by_a_supervisor_only(
    client: TestClient, auth: Auth, app: FastAPI
) -> None:
    made = new_holder(client, auth, family_name="Benoit")
    serial = new_serial()
    client.post(
        "/api/v1/cards",
        json={"holder_id": made["id"], "serial": serial, "applications": ["plum"]},
        headers=auth("agent"),
    )
    blocked = client.post(
        f"/api/v1/cards/{serial}/block", json={"reason": "perdue"}, headers=auth("agent")
    )
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    listed = client.get("/api/v1/deny-lists/entries", headers=auth("agent")).json()
    assert serial in {e["card_serial"] for e in listed}
    for who in ("agent", "auditor", "desk", "none"):
        refused = client.post(
            f"/api/v1/cards/{serial}/unblock", json={"reason": "retrouvée"}, headers=auth(who)
        )
        assert refused.status_code in (401, 403), who
    done = client.post(
        f"/api/v1/cards/{serial}/unblock", json={"reason": "retrouvée"}, headers=auth("supervisor")
    )
    assert done.status_code == 200 and done.json()["status"] == "active"
    listed = client.get("/api/v1/deny-lists/entries", headers=auth("agent")).json()
    assert serial not in {e["card_serial"] for e in listed}
    again = client.post(
        f"/api/v1/cards/{serial}/unblock", json={"reason": "encore"}, headers=auth("supervisor")
    )
    assert again.status_code == 409
    assert audit_reasons(app, "card.block", f"card:{serial}") == ["perdue"]
    assert audit_reasons(app, "card.unblock", f"card:{serial}") == ["retrouvée"]


# -- a desk job's card and money -----------------------------------------------------------------
def test_card_issuing_and_sales_recorded_only_once_written_and_retry(
    client: TestClient, auth: Auth, app: FastAPI, catalogue: None
) -> None:
    made = new_holder(client, auth, family_name="Colin")
    created = client.post(
        JOBS,
        json={
            "desk_terminal_id": DESK,
            "holder_id": made["id"],
            "applications": ["plum", "wallet"],
            "contracts": [110],
            "wallet_reload_cents": 700,
        },
        headers=auth("agent"),
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert client.post(f"{JOBS}/{job_id}/retry", headers=auth("agent")).status_code == 409
    taken = client.get(f"{JOBS}/next", headers=auth("desk")).json()
    assert taken["id"] == job_id
    serial = new_serial()
    plan = client.post(
        f"{JOBS}/{job_id}/card",
        json={"card_serial": serial, "snapshot": {"records": {}, "sv": {"tnum": 0, "balance": 0}}},
        headers=auth("desk"),
    ).json()["plan"]
    card = client.get(f"/api/v1/cards/{serial}", params={"reason": "test"}, headers=auth("agent"))
    assert card.json()["status"] == "issuing"

    def sales() -> list[int]:
        with transaction(app.state.sessionmaker) as session:
            query = select(Sale.amount_cents).where(Sale.action_id.in_(action_ids))
            return sorted(session.scalars(query))

    action_ids = {a for step in plan["steps"] for a in step["action_ids"]}
    assert sales() == []
    steps = plan["steps"]
    contract = next(s for s in steps if s["id"].startswith("contract."))
    counter = 0xFFFFF0
    for step in steps:
        if step["id"] == "sv":
            continue
        client.post(
            f"{JOBS}/{job_id}/progress",
            json={"step_id": step["id"], "card_tx_counter": counter},
            headers=auth("desk"),
        )
        counter -= 1
    assert sales() == [4500]  # the contract is on the card, the reload is not
    summary = client.get(f"{JOBS}/{job_id}", headers=auth("agent")).json()["summary"]
    paid = {line["label"]: line["paid"] for line in summary["loads"]}
    assert paid == {"pass_i12": True, "Rechargement porte-monnaie Ma région numérique": False}
    failed = client.post(
        f"{JOBS}/{job_id}/progress",
        json={"status": "failed", "message": "Le module de sécurité du guichet a refusé"},
        headers=auth("desk"),
    )
    assert failed.json()["status"] == "failed"
    card = client.get(f"/api/v1/cards/{serial}", params={"reason": "test"}, headers=auth("agent"))
    assert card.json()["status"] == "issuing"  # not usable: not fully written
    assert client.post(f"{JOBS}/{job_id}/retry", headers=auth("auditor")).status_code == 403
    retried = client.post(f"{JOBS}/{job_id}/retry", headers=auth("agent"))
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    again = client.get(f"{JOBS}/next", headers=auth("desk")).json()
    assert again["id"] == job_id and again["message"] == f"Posez la carte {serial} sur le lecteur"
    assert again["plan"] == plan and contract["id"] in again["steps_done"]
    client.post(
        f"{JOBS}/{job_id}/progress",
        json={"step_id": "sv", "card_tx_counter": counter},
        headers=auth("desk"),
    )
    done = client.get(f"{JOBS}/{job_id}", headers=auth("agent")).json()
    assert done["status"] == "done"
    assert sales() == [700, 4500]  # each once
    card = client.get(f"/api/v1/cards/{serial}", params={"reason": "test"}, headers=auth("agent"))
    assert card.json()["status"] == "active"
    assert card.json()["balances"] == {"wallet.sv": 700}


# -- back office ---------------------------------------------------------------------------------
def test_price_history_deactivation_and_roles(client: TestClient, auth: Auth) -> None:
    made = client.post(
        "/api/v1/products",
        json={
            "code": 130,
            "fare_product_id": "hebdo_i12",
            "name": "Hebdo",
            "application": "plum",
            "amount_cents": 1250,
        },
        headers=auth("supervisor"),
    )
    assert made.status_code == 201, made.text
    assert (
        client.post(
            "/api/v1/products/130/price", json={"amount_cents": 1300}, headers=auth("agent")
        ).status_code
        == 403
    )
    changed = client.post(
        "/api/v1/products/130/price", json={"amount_cents": 1300}, headers=auth("supervisor")
    )
    assert changed.json()["amount_cents"] == 1300
    negative = client.post(
        "/api/v1/products/130/price", json={"amount_cents": -5}, headers=auth("supervisor")
    )
    assert negative.status_code == 422
    gone = client.post("/api/v1/products/130/deactivate", headers=auth("supervisor"))
    assert gone.json()["active"] is False
    assert 130 not in [
        p["code"] for p in client.get("/api/v1/products", headers=auth("agent")).json()
    ]
    every = client.get("/api/v1/products/all", headers=auth("auditor")).json()
    assert any(p["code"] == 130 and not p["active"] for p in every)
    history = client.get("/api/v1/products/130/history", headers=auth("auditor")).json()
    assert [(h["action"], h["detail"]) for h in history] == [
        ("product.create", "créé à 1250 c"),
        ("product.price", "prix 1250 c -> 1300 c"),
        ("product.deactivate", "retiré de la vente"),
    ]
    assert client.get("/api/v1/products/130/history", headers=auth("agent")).status_code == 403


def test_anomalies_filtered_resolved_with_a_reason_and_named_in_french(
    client: TestClient, auth: Auth, app: FastAPI
) -> None:
    with transaction(app.state.sessionmaker) as session:
        for kind, terminal in (("sequence_gap", "T-I12-A"), ("replay", "T-I12-B")):
            session.add(
                Anomaly(kind=kind, terminal_id=terminal, card_pseudonym="p-i12", detail="x")
            )
    url = "/api/v1/reconciliation/anomalies"
    mine = client.get(url, params={"card_pseudonym": "p-i12"}, headers=auth("auditor")).json()
    assert {a["kind_fr"] for a in mine} == {
        "Séquence du terminal incomplète",
        "Transaction rejouée (compteur carte déjà vu)",
    }
    assert {a["state_fr"] for a in mine} == {"ouverte"}
    one = client.get(url, params={"terminal_id": "T-I12-A"}, headers=auth("auditor")).json()
    assert [a["kind"] for a in one] == ["sequence_gap"]
    target = one[0]["id"]
    resolve = f"{url}/{target}/resolve"
    assert client.post(resolve, json={"reason": "vu"}, headers=auth("auditor")).status_code == 403
    done = client.post(resolve, json={"reason": "batch resent"}, headers=auth("supervisor"))
    assert done.status_code == 200 and done.json()["resolved"] is True
    assert done.json()["resolution"] == "batch resent (supervisor1)"
    assert (
        client.post(resolve, json={"reason": "x2x"}, headers=auth("supervisor")).status_code == 409
    )
    resolved = client.get(
        url, params={"card_pseudonym": "p-i12", "state": "resolved"}, headers=auth("auditor")
    ).json()
    assert [a["id"] for a in resolved] == [target]
    still_open = client.get(
        url, params={"card_pseudonym": "p-i12", "state": "open"}, headers=auth("auditor")
    ).json()
    assert [a["kind"] for a in still_open] == ["replay"]


def test_merchants_clearing_statements_and_back_office_endpoints(
    client: TestClient, auth: Auth, app: FastAPI
) -> None:
    at = DAY + timedelta(days=400)
    with transaction(app.state.sessionmaker) as session:
        for line, (account, amount) in enumerate(
            [("card:p-i12m:cursus.books_aid", -1999), ("merchant:LIBRAIRIE-1:aid.books", 1999)]
        ):
            session.add(
                LedgerEntry(
                    entry_ref="i12-book",
                    line=line,
                    account=account,
                    amount=amount,
                    occurred_at=at,
                    kind="aid_spend",
                )
            )
    window = {"start": at.isoformat(), "end": (at + timedelta(days=1)).isoformat()}
    merchants = client.get(
        "/api/v1/reconciliation/merchants", params=window, headers=auth("auditor")
    )
    assert merchants.json() == {"merchants": {"LIBRAIRIE-1": {"books": 1999}}}
    closed = client.post(
        "/api/v1/reconciliation/clearing",
        json={"period_id": "i12-day", **window},
        headers=auth("supervisor"),
    )
    assert closed.status_code == 200, closed.text
    periods = client.get("/api/v1/reconciliation/clearing", headers=auth("auditor")).json()
    assert "i12-day" in [p["period_id"] for p in periods]
    csv_answer = client.get(
        "/api/v1/reconciliation/clearing/i12-day/statement.csv", headers=auth("auditor")
    )
    assert csv_answer.status_code == 200
    rows = list(csv.reader(io.StringIO(csv_answer.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["période", "payeur", "bénéficiaire", "compte", "libellé", "montant (€)"]
    assert [
        "i12-day",
        "funder:region:books",
        "merchant:LIBRAIRIE-1",
        "merchant:LIBRAIRIE-1:aid.books",
        "Commerçant LIBRAIRIE-1 — aide livres et équipement",
        "19,99",
    ] in rows
    pdf = client.get(
        "/api/v1/reconciliation/clearing/i12-day/statement.pdf", headers=auth("auditor")
    )
    assert pdf.content.startswith(b"%PDF-") and b"i12-day" in pdf.content
    missing = client.get(
        "/api/v1/reconciliation/clearing/nope/statement.csv", headers=auth("auditor")
    )
    assert missing.status_code == 404
    terminals = client.get("/api/v1/back-office/terminals", headers=auth("supervisor")).json()
    assert {t["terminal_id"] for t in terminals} >= {t for t, _, _ in TERMINALS.values()}
    assert all({"last_upload_at", "open_gaps", "kind_fr"} <= set(t) for t in terminals)
    deny = client.get("/api/v1/back-office/deny-list", headers=auth("auditor")).json()
    assert set(deny) == {"version", "issued_at", "entries"}
    for name in ("taps-per-hour", "revenue-per-operator", "anomalies-per-day"):
        image = client.get(f"/api/v1/back-office/plots/{name}.png", headers=auth("auditor"))
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert (
        client.get("/api/v1/back-office/plots/nope.png", headers=auth("auditor")).status_code == 404
    )
    labels = client.get(
        "/api/v1/labels/accounts",
        params={"account": ["funder:region:canteen", "region:plum"]},
        headers=auth("agent"),
    ).json()
    assert labels["funder:region:canteen"] == "Financeur région — cantine"
    assert (
        client.get("/api/v1/labels", headers=auth("agent"))
        .json()["anomaly_kinds"]["card_counter_gap"]
        .startswith("Transaction de carte manquante")
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/back-office/terminals",
        "/api/v1/back-office/deny-list",
        "/api/v1/back-office/plots/anomalies-per-day.png",
        "/api/v1/reconciliation/merchants?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
        "/api/v1/reconciliation/clearing",
        "/api/v1/products/all",
    ],
)
@pytest.mark.parametrize("who", ["agent", "desk", "gate", "none"])
def test_back_office_reads_are_for_supervisors_and_auditors(
    client: TestClient, auth: Auth, path: str, who: str
) -> None:
    assert client.get(path, headers=auth(who)).status_code in (401, 403)


def test_back_office_page_is_french_and_self_contained(client: TestClient) -> None:
    page = client.get("/back-office/")
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text  # nothing loaded from elsewhere
    for name in ("backoffice.js", "backoffice.css"):
        assert client.get(f"/back-office/static/{name}").status_code == 200
    assert client.get("/back-office/static/other.js").status_code == 404


def served_to_gates(client: TestClient, auth: Auth) -> set[int]:
    answer = client.get("/api/v1/action-lists/current", headers=auth("gate"))
    assert answer.status_code == 200, answer.text
    return {a["action_id"] for a in answer.json()["payload"]["actions"]}


def test_a_failed_update_queues_its_loads_for_the_next_tap_and_an_issuing_card_takes_none(
    client: TestClient, auth: Auth, app: FastAPI, catalogue: None
) -> None:
    made = new_holder(client, auth, family_name="Lucas")
    serial = new_serial()
    card = client.post(
        "/api/v1/cards",
        json={"holder_id": made["id"], "serial": serial, "applications": ["plum"]},
        headers=auth("agent"),
    )
    assert card.status_code == 201
    created = client.post(
        JOBS,
        json={
            "desk_terminal_id": DESK,
            "kind": "update",
            "card_serial": serial,
            "contracts": [110],
        },
        headers=auth("agent"),
    )
    job_id = created.json()["id"]
    assert client.get(f"{JOBS}/next", headers=auth("desk")).json()["id"] == job_id
    plan = client.post(
        f"{JOBS}/{job_id}/card",
        json={"card_serial": serial, "snapshot": {"records": {}, "sv": {"tnum": 0, "balance": 0}}},
        headers=auth("desk"),
    ).json()["plan"]
    (action_id,) = {a for step in plan["steps"] for a in step["action_ids"]}
    with transaction(app.state.sessionmaker) as session:
        assert list(session.scalars(select(Sale).where(Sale.action_id == action_id))) == []
    failed = client.post(
        f"{JOBS}/{job_id}/progress",
        json={"status": "failed", "message": "Carte retirée trop tôt"},
        headers=auth("desk"),
    ).json()
    assert failed["message"].endswith(
        "1 chargement(s) encaissé(s), écrit(s) au prochain passage de la carte"
    )
    with transaction(app.state.sessionmaker) as session:
        amounts = list(
            session.scalars(select(Sale.amount_cents).where(Sale.action_id == action_id))
        )
    assert amounts == [4500]  # collected once, queued for the next tap
    assert action_id in served_to_gates(client, auth)
    summary = client.get(f"{JOBS}/{job_id}", headers=auth("agent")).json()["summary"]
    assert [(line["paid"], line.get("queued")) for line in summary["loads"]] == [(True, True)]

    # An issue job's card, half written: its loads wait for the desk, not for a gate.
    other = new_holder(client, auth, family_name="Lucas", given_name="Eva")
    client.post(
        JOBS,
        json={
            "desk_terminal_id": DESK,
            "holder_id": other["id"],
            "applications": ["plum"],
            "contracts": [110],
        },
        headers=auth("agent"),
    )
    job = client.get(f"{JOBS}/next", headers=auth("desk")).json()
    plan = client.post(
        f"{JOBS}/{job['id']}/card",
        json={
            "card_serial": new_serial(),
            "snapshot": {"records": {}, "sv": {"tnum": 0, "balance": 0}},
        },
        headers=auth("desk"),
    ).json()["plan"]
    pending = {a for step in plan["steps"] for a in step["action_ids"]}
    assert pending and not pending & served_to_gates(client, auth)
    client.post(
        f"{JOBS}/{job['id']}/progress",
        json={"status": "failed", "message": "module de sécurité"},
        headers=auth("desk"),
    )
    with transaction(app.state.sessionmaker) as session:
        assert list(session.scalars(select(Sale).where(Sale.action_id.in_(pending)))) == []
