"""The holder's page API on SQLite and PostgreSQL (fixtures of tests/backend/conftest.py).

Sign-in (one-time code, argon2, throttling per login and per client), what a holder sees, what a
holder does (block, buy, history, export), who sees what (another holder's ids are unknown),
guardians of minors, and bad input never a 5xx.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from backend.columns import utcnow
from backend.db import transaction
from backend.holderpage.models import HolderAccount, KeptTrip, OnlinePayment
from backend.holderpage.settings import HolderSettings
from backend.privacy.models import CardLink

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holderkit import (
    CARNET_CODE,
    MENU_SCHOOL,
    PASS_CODE,
    RELOAD_CODE,
    Person,
    activation_code,
    add_products,
    make_person,
    new_serial,
    ok,
    sign_up,
)

MENU_FILE = Path(__file__).resolve().parents[3] / "terminal" / "canteen" / "data" / "menus.json"
PASSWORD = "un mot de passe solide"


@pytest.fixture(scope="module")
def world(app: FastAPI, client: TestClient, auth: Any) -> dict[str, Any]:
    """Two adult holders with pages, products, the menu file configured."""
    app.state.holder_settings = HolderSettings(menu_file=MENU_FILE)
    add_products(client, auth("supervisor"))
    ines = make_person(
        client,
        app,
        auth("agent"),
        given_name="Inès",
        family_name="Lefebvre",
        birth_date="2004-05-14",
        desk_id="desk-lille-01",
    )
    marc = make_person(
        client,
        app,
        auth("agent"),
        given_name="Marc",
        family_name="Dubois",
        birth_date="1990-02-01",
        seen=False,
    )
    tokens = {
        "ines": sign_up(client, auth("agent"), ines.holder_id, "ines@example.fr", PASSWORD),
        "marc": sign_up(client, auth("agent"), marc.holder_id, "marc@example.fr", PASSWORD),
    }
    return {"ines": ines, "marc": marc, "tokens": tokens}


def bearer(world: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['tokens'][who]}"}


@pytest.fixture
def other_client(app: FastAPI) -> Iterator[TestClient]:
    """A client from another address (throttling counts per client address)."""
    with TestClient(app, raise_server_exceptions=False, client=("192.0.2.77", 4000)) as c:
        yield c


# -- sign-in -------------------------------------------------------------------------------------
def test_login_gives_a_holder_token_that_desk_endpoints_refuse(
    client: TestClient, world: dict[str, Any]
) -> None:
    token = ok(
        client.post(
            "/api/v1/holder/login", json={"login": "INES@example.fr ", "password": PASSWORD}
        )
    )
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert ok(client.get("/api/v1/holder/me", headers=headers))["holder"]["given_name"] == "Inès"
    refused = client.get(
        f"/api/v1/holders/{world['ines'].holder_id}?reason=curiosité", headers=headers
    )
    assert refused.status_code == 401
    assert client.get("/api/v1/holder/me").status_code == 401
    assert client.get("/api/v1/holder/me", headers={"Authorization": "Bearer x"}).status_code == 401


def test_password_is_stored_as_argon2id(app: FastAPI, world: dict[str, Any]) -> None:
    with transaction(app.state.sessionmaker) as session:
        account = session.scalar(
            select(HolderAccount).where(HolderAccount.holder_id == world["ines"].holder_id)
        )
        assert account is not None and account.password_hash is not None
        assert account.password_hash.startswith("$argon2id$")
        assert PASSWORD not in account.password_hash


def test_activation_code_is_one_time_audited_and_desk_only(
    client: TestClient, app: FastAPI, auth: Any, world: dict[str, Any]
) -> None:
    holder = ok(
        client.post(
            "/api/v1/holders",
            json={"family_name": "Martin", "given_name": "Léa", "birth_date": "1999-01-02"},
            headers=auth("agent"),
        ),
        201,
    )
    assert (
        client.post(
            "/api/v1/holder/activation-codes",
            json={"holder_id": holder["id"], "reason": "espace"},
            headers=auth("gate"),
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/holder/activation-codes",
            json={"holder_id": holder["id"], "reason": "espace"},
            headers=bearer(world, "ines"),
        ).status_code
        == 401
    )
    code = activation_code(client, auth("agent"), holder["id"])
    body = {"code": code.lower(), "login": "lea@example.fr", "password": "court"}
    short = client.post("/api/v1/holder/activate", json=body)
    assert short.status_code == 422 and "trop court" in short.json()["message_fr"]
    body["password"] = PASSWORD
    ok(client.post("/api/v1/holder/activate", json=body), 201)
    again = client.post("/api/v1/holder/activate", json={**body, "login": "lea2@example.fr"})
    assert again.status_code == 422
    assert "déjà utilisé" in again.json()["message_fr"]
    trail = ok(
        client.get(
            "/api/v1/audit", params={"subject": f"holder:{holder['id']}"}, headers=auth("auditor")
        )
    )
    actions = {row["action"] for row in trail}
    assert {"holder.activation", "holder.activated"} <= actions
    anonymous = ok(
        client.post("/api/v1/holders", json={"anonymous": True}, headers=auth("agent")), 201
    )
    refused = client.post(
        "/api/v1/holder/activation-codes",
        json={"holder_id": anonymous["id"], "reason": "espace"},
        headers=auth("agent"),
    )
    assert refused.status_code == 422 and "anonyme" in refused.json()["message_fr"]


def test_login_is_throttled_per_account(
    client: TestClient, app: FastAPI, auth: Any, world: dict[str, Any], other_client: TestClient
) -> None:
    limit = HolderSettings().max_failures_per_login
    for _ in range(limit):
        wrong = other_client.post(
            "/api/v1/holder/login", json={"login": "marc@example.fr", "password": "pas le bon"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["message_fr"] == "identifiant ou mot de passe incorrect"
    # Even the right password is refused now, from any client: the account is throttled.
    throttled = client.post(
        "/api/v1/holder/login", json={"login": "marc@example.fr", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    assert throttled.json()["message_fr"].startswith("trop de tentatives de connexion")
    trail = ok(
        client.get(
            "/api/v1/audit", params={"subject": "login:marc@example.fr"}, headers=auth("auditor")
        )
    )
    actions = [row["action"] for row in trail]
    assert actions.count("holder.login_failed") == limit
    assert "holder.login_throttled" in actions
    # Another account is not affected.
    ok(client.post("/api/v1/holder/login", json={"login": "ines@example.fr", "password": PASSWORD}))


def test_login_is_throttled_per_client(app: FastAPI, world: dict[str, Any]) -> None:
    app.state.holder_settings = HolderSettings(menu_file=MENU_FILE, max_failures_per_client=4)
    try:
        with TestClient(app, raise_server_exceptions=False, client=("198.51.100.9", 1)) as c:
            for n in range(4):
                answer = c.post(
                    "/api/v1/holder/login", json={"login": f"x{n}@example.fr", "password": "??"}
                )
                assert answer.status_code == 401
            blocked = c.post(
                "/api/v1/holder/login", json={"login": "ines@example.fr", "password": PASSWORD}
            )
            assert blocked.status_code == 429
        with TestClient(app, raise_server_exceptions=False, client=("198.51.100.10", 1)) as c:
            ok(
                c.post(
                    "/api/v1/holder/login", json={"login": "ines@example.fr", "password": PASSWORD}
                )
            )
    finally:
        app.state.holder_settings = HolderSettings(menu_file=MENU_FILE)


# -- what the holder sees ------------------------------------------------------------------------
def test_overview_shows_cards_balances_aid_rights_consultations_and_menu(
    client: TestClient, world: dict[str, Any]
) -> None:
    me = ok(client.get("/api/v1/holder/me", headers=bearer(world, "ines")))
    ines: Person = world["ines"]
    [card] = me["cards"]
    assert card["serial"] == ines.serial and card["status"] == "active"
    assert {a["application"] for a in card["applications"]} == {
        "plum",
        "wallet",
        "cursus",
        "employment",
    }
    balances = {b["purse"]: b["value"] for b in card["balances"]}
    assert balances == {"wallet.sv": 1250, "cursus.books_aid": 3200}
    assert card["balances_at"].startswith("2026-11-27T07:42")
    # The desk's aid grant is waiting for the next tap.
    assert "aid_credit" in [a["kind"] for a in card["pending"]]
    [books] = me["aid"]
    assert books["purpose"] == "books" and books["granted_cents"] == 5000
    assert books["left_cents"] == 3200 and books["pending_cents"] == 5000
    [right] = me["rights"]
    assert right["partner"] == "mission_locale" and right["hours"] == 40
    reasons = [c["reason"] for c in me["consultations"]]
    assert "demande de duplicata au guichet" in reasons
    assert all("holder:" not in c["who"] for c in me["consultations"])
    assert me["school_uai"] == MENU_SCHOOL
    menu = me["menu"]
    assert menu["school_name"].startswith("Lycée de la Somme")
    assert [d["weekday"] for d in menu["days"]] == [
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
    ]
    assert any(s["service"] == "lunch" and s["dishes"] for d in menu["days"] for s in d["services"])
    assert {p["code"] for p in me["catalogue"]} == {PASS_CODE, CARNET_CODE, RELOAD_CODE}
    # Marc's card never passed a gate: no balances, no date.
    marc = ok(client.get("/api/v1/holder/me", headers=bearer(world, "marc")))
    assert marc["cards"][0]["balances"] == [] and marc["cards"][0]["balances_at"] is None
    assert marc["menu"] is None and marc["school_uai"] is None


# -- who sees what -------------------------------------------------------------------------------
def test_another_holders_ids_are_unknown_and_nothing_leaks(
    client: TestClient, world: dict[str, Any]
) -> None:
    ines, marc = world["ines"], world["marc"]
    headers = bearer(world, "ines")
    missing = new_serial()
    for serial in (marc.serial, missing):
        answers = [
            client.post(
                f"/api/v1/holder/cards/{serial}/block", json={"confirm": True}, headers=headers
            ),
            client.post(
                "/api/v1/holder/purchases",
                json={
                    "card_serial": serial,
                    "product_code": PASS_CODE,
                    "payment_means": "sandbox-ok",
                },
                headers=headers,
            ),
        ]
        for answer in answers:
            assert answer.status_code == 404, answer.text
            assert answer.json()["message_fr"] == f"carte {serial} inconnue"
            assert "Dubois" not in answer.text
    for holder_id in (marc.holder_id, 999_999):
        answer = client.get("/api/v1/holder/me", params={"holder_id": holder_id}, headers=headers)
        assert answer.status_code == 404
        assert answer.json()["message_fr"] == f"titulaire {holder_id} inconnu"
        export = client.get(
            "/api/v1/holder/export", params={"holder_id": holder_id}, headers=headers
        )
        assert export.status_code == 404
    me = client.get("/api/v1/holder/me", headers=headers)
    assert marc.serial not in me.text and "Dubois" not in me.text
    assert ines.serial in me.text
    # Marc's card was not touched.
    marc_me = ok(client.get("/api/v1/holder/me", headers=bearer(world, "marc")))
    assert marc_me["cards"][0]["status"] == "active"


# -- what the holder does ------------------------------------------------------------------------
def test_purchase_becomes_a_pending_action_list_entry(
    client: TestClient, app: FastAPI, auth: Any, world: dict[str, Any]
) -> None:
    ines: Person = world["ines"]
    headers = bearer(world, "ines")
    bought = ok(
        client.post(
            "/api/v1/holder/purchases",
            json={
                "card_serial": ines.serial,
                "product_code": PASS_CODE,
                "payment_means": "sandbox-ok",
            },
            headers=headers,
        ),
        201,
    )
    assert bought["amount_cents"] == 3000 and bought["action_status"] == "pending"
    assert bought["payment_reference"].startswith("SBX-")
    reload = ok(
        client.post(
            "/api/v1/holder/purchases",
            json={
                "card_serial": ines.serial,
                "product_code": RELOAD_CODE,
                "amount_cents": 2000,
                "payment_means": "sandbox-ok",
            },
            headers=headers,
        ),
        201,
    )
    # The gate's signed action list carries the pass; the canteen's carries the reload.
    gate_list = ok(client.get("/api/v1/action-lists/current", headers=auth("gate")))
    pass_action = [
        a for a in gate_list["payload"]["actions"] if a["action_id"] == bought["action_id"]
    ]
    assert pass_action and pass_action[0]["card_serial"] == ines.serial
    assert pass_action[0]["kind"] == "load_contract"
    assert pass_action[0]["params"]["product_code"] == PASS_CODE
    till_list = ok(client.get("/api/v1/action-lists/current", headers=auth("canteen")))
    [wallet] = [a for a in till_list["payload"]["actions"] if a["action_id"] == reload["action_id"]]
    assert wallet["kind"] == "sv_reload" and wallet["params"]["amount"] == 2000
    me = ok(client.get("/api/v1/holder/me", headers=headers))
    pending = {a["action_id"]: a for a in me["cards"][0]["pending"]}
    assert pending[bought["action_id"]]["product_name"] == "Abonnement mensuel PLUM"
    assert pending[reload["action_id"]]["amount_cents"] == 2000


def test_declined_payment_sells_nothing_and_is_recorded(
    client: TestClient, app: FastAPI, world: dict[str, Any]
) -> None:
    ines: Person = world["ines"]
    headers = bearer(world, "ines")
    before = ok(client.get("/api/v1/holder/me", headers=headers))["cards"][0]["pending"]
    declined = client.post(
        "/api/v1/holder/purchases",
        json={
            "card_serial": ines.serial,
            "product_code": CARNET_CODE,
            "payment_means": "sandbox-declined",
        },
        headers=headers,
    )
    assert declined.status_code == 402
    assert declined.json()["message_fr"].startswith("paiement refusé")
    after = ok(client.get("/api/v1/holder/me", headers=headers))["cards"][0]["pending"]
    assert after == before
    with transaction(app.state.sessionmaker) as session:
        statuses = list(
            session.scalars(
                select(OnlinePayment.status).where(OnlinePayment.card_serial == ines.serial)
            )
        )
    assert "declined" in statuses
    for body, status, text in (
        ({"product_code": RELOAD_CODE, "amount_cents": 50}, 422, "entre 1 € et 150 €"),
        ({"product_code": RELOAD_CODE, "amount_cents": 20_000}, 422, "entre 1 € et 150 €"),
        ({"product_code": RELOAD_CODE}, 422, "entre 1 € et 150 €"),
        ({"product_code": 4242}, 404, "produit 4242 inconnu"),
        ({"product_code": PASS_CODE, "payment_means": "cash"}, 422, "moyen de paiement inconnu"),
    ):
        answer = client.post(
            "/api/v1/holder/purchases",
            json={"card_serial": ines.serial, "payment_means": "sandbox-ok", **body},
            headers=headers,
        )
        assert answer.status_code == status, answer.text
        assert text in answer.json()["message_fr"]


def test_export_holds_the_holders_data(client: TestClient, world: dict[str, Any]) -> None:
    ok(
        client.post(
            "/api/v1/holder/purchases",
            json={
                "card_serial": world["ines"].serial,
                "product_code": CARNET_CODE,
                "payment_means": "sandbox-ok",
            },
            headers=bearer(world, "ines"),
        ),
        201,
    )
    answer = client.get("/api/v1/holder/export", headers=bearer(world, "ines"))
    assert answer.status_code == 200
    assert "attachment" in answer.headers["content-disposition"]
    doc = answer.json()
    assert doc["format"] == "regioncard.holder-export/1"
    assert doc["holder"]["family_name"] == "Lefebvre"
    assert doc["cards"][0]["serial"] == world["ines"].serial
    assert any(p["status"] == "paid" for p in doc["online_payments"])
    assert doc["school_aid"][0]["amount_cents"] == 5000
    assert doc["consultations"] and doc["employment_rights"]
    assert "password" not in json.dumps(doc) and "argon2" not in json.dumps(doc)
    assert world["marc"].serial not in answer.text


def _add_tap(
    app: FastAPI, serial: str, pseudonym: str, *, seq: int, link_age_hours: int, age_minutes: int
) -> None:
    from backend.validation.models import Tap

    now = utcnow()
    with transaction(app.state.sessionmaker) as session:
        if session.get(CardLink, pseudonym) is None:
            session.add(
                CardLink(
                    pseudonym=pseudonym,
                    card_serial=serial,
                    created_at=now - timedelta(hours=link_age_hours),
                )
            )
        session.add(
            Tap(
                terminal_id="gate-lille-flandres-01",
                terminal_seq=seq,
                card_pseudonym=pseudonym,
                card_tx_counter=0xFFFF00 - seq,
                charged=True,
                status="posted",
                kind="validation",
                application="plum",
                outcome="COMMITTED",
                resolution="card_close",
                occurred_at=now - timedelta(minutes=age_minutes),
                product_code=PASS_CODE,
                station_id=1001,
                movements="[]",
                sam_verified=True,
            )
        )


def test_trip_history_is_kept_only_after_opt_in_and_forgotten_on_opt_out(
    client: TestClient, app: FastAPI, auth: Any, world: dict[str, Any]
) -> None:
    ines, marc = world["ines"], world["marc"]
    headers = bearer(world, "ines")
    _add_tap(app, ines.serial, "P1-ines-before", seq=90_001, link_age_hours=1, age_minutes=60)
    me = ok(client.get("/api/v1/holder/me", headers=headers))
    assert me["trip_history"] == {"keep": False, "since": None, "trips": []}
    ok(client.put("/api/v1/holder/trip-history", json={"keep": True}, headers=headers))
    # A tap linked 47 hours ago (still within the link rule), and Marc's tap (not opted in).
    _add_tap(app, ines.serial, "P2-ines-after", seq=90_002, link_age_hours=47, age_minutes=0)
    _add_tap(app, marc.serial, "P2-marc", seq=90_003, link_age_hours=47, age_minutes=0)
    # The hourly purge keeps Inès's trip under her account, then deletes links past 48 h.
    with transaction(app.state.sessionmaker) as session:
        from backend.privacy.service import purge_card_links

        purge_card_links(session, utcnow() + timedelta(hours=2))
        assert session.get(CardLink, "P2-ines-after") is None
        kept = list(session.scalars(select(KeptTrip)))
    assert [(k.holder_id, k.station_id) for k in kept] == [(ines.holder_id, 1001)]
    me = ok(client.get("/api/v1/holder/me", headers=headers))
    assert me["trip_history"]["keep"] is True
    assert len(me["trip_history"]["trips"]) == 1
    assert (
        ok(client.get("/api/v1/holder/me", headers=bearer(world, "marc")))["trip_history"]["trips"]
        == []
    )
    ok(client.put("/api/v1/holder/trip-history", json={"keep": False}, headers=headers))
    with transaction(app.state.sessionmaker) as session:
        assert session.scalar(select(func.count()).select_from(KeptTrip)) == 0


def test_block_deny_lists_the_card_at_once(
    client: TestClient, app: FastAPI, auth: Any, world: dict[str, Any]
) -> None:
    ines = make_person(
        client, app, auth("agent"), given_name="Chloé", family_name="Petit", birth_date="2001-07-07"
    )
    token = sign_up(client, auth("agent"), ines.holder_id, "chloe@example.fr", PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    unconfirmed = client.post(
        f"/api/v1/holder/cards/{ines.serial}/block", json={"confirm": False}, headers=headers
    )
    assert unconfirmed.status_code == 422 and "confirmez" in unconfirmed.json()["message_fr"]
    before = client.get("/api/v1/deny-lists/full", headers=auth("gate"))
    if before.status_code == 404:  # nothing published yet in this database
        version_before = 0
    else:
        assert ines.serial not in ok(before)["payload"]["serials"]
        version_before = before.json()["version"]
    done = ok(
        client.post(
            f"/api/v1/holder/cards/{ines.serial.lower()}/block",
            json={"confirm": True},
            headers=headers,
        )
    )
    assert done["status"] == "blocked" and done["cancelled_loads"] >= 1
    full = ok(client.get("/api/v1/deny-lists/full", headers=auth("gate")))
    assert ines.serial in full["payload"]["serials"]
    assert full["version"] > version_before
    again = client.post(
        f"/api/v1/holder/cards/{ines.serial}/block", json={"confirm": True}, headers=headers
    )
    assert again.status_code == 409 and "déjà bloquée" in again.json()["message_fr"]
    refused = client.post(
        "/api/v1/holder/purchases",
        json={"card_serial": ines.serial, "product_code": PASS_CODE, "payment_means": "sandbox-ok"},
        headers=headers,
    )
    assert refused.status_code == 409
    trail = ok(
        client.get(
            "/api/v1/audit", params={"subject": f"card:{ines.serial}"}, headers=auth("auditor")
        )
    )
    assert "holder.block" in {row["action"] for row in trail}


# -- guardians -----------------------------------------------------------------------------------
def test_a_legal_guardian_manages_a_minors_page(
    client: TestClient, app: FastAPI, auth: Any, world: dict[str, Any]
) -> None:
    agent = auth("agent")
    parent = make_person(
        client,
        app,
        agent,
        given_name="Sophie",
        family_name="Roux",
        birth_date="1980-03-03",
        seen=False,
    )
    child = make_person(
        client,
        app,
        agent,
        given_name="Lucas",
        family_name="Roux",
        birth_date="2014-06-06",
        seen=False,
    )
    token = sign_up(client, agent, parent.holder_id, "sophie@example.fr", PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        client.get(
            "/api/v1/holder/me", params={"holder_id": child.holder_id}, headers=headers
        ).status_code
        == 404
    )
    ok(
        client.post(
            "/api/v1/holder/guardians",
            json={
                "guardian_holder_id": parent.holder_id,
                "ward_holder_id": child.holder_id,
                "reason": "livret de famille présenté",
            },
            headers=agent,
        ),
        201,
    )
    me = ok(client.get("/api/v1/holder/me", headers=headers))
    assert me["account"]["wards"] == [{"holder_id": child.holder_id, "name": "Lucas Roux"}]
    ward = ok(
        client.get("/api/v1/holder/me", params={"holder_id": child.holder_id}, headers=headers)
    )
    assert ward["holder"]["minor"] is True and ward["cards"][0]["serial"] == child.serial
    ok(
        client.post(
            "/api/v1/holder/purchases",
            params={"holder_id": child.holder_id},
            json={
                "card_serial": child.serial,
                "product_code": PASS_CODE,
                "payment_means": "sandbox-ok",
            },
            headers=headers,
        ),
        201,
    )
    # The parent cannot use the child's id to reach anyone else's card.
    other = client.post(
        f"/api/v1/holder/cards/{world['marc'].serial}/block",
        params={"holder_id": child.holder_id},
        json={"confirm": True},
        headers=headers,
    )
    assert other.status_code == 404
    adult = client.post(
        "/api/v1/holder/guardians",
        json={
            "guardian_holder_id": child.holder_id,
            "ward_holder_id": parent.holder_id,
            "reason": "essai",
        },
        headers=agent,
    )
    assert adult.status_code == 422 and "mineur" in adult.json()["message_fr"]


# -- bad input -----------------------------------------------------------------------------------
def test_bad_requests_are_french_4xx(client: TestClient, world: dict[str, Any]) -> None:
    headers = {**bearer(world, "marc"), "Content-Type": "application/json"}
    for method, path, body in (
        ("POST", "/api/v1/holder/login", b"{"),
        ("POST", "/api/v1/holder/purchases", b'{"card_serial": "zz"}'),
        ("PUT", "/api/v1/holder/trip-history", b'{"keep": "peut-etre"}'),
        ("GET", "/api/v1/holder/me?holder_id=-3", None),
        ("GET", "/api/v1/holder/me?holder_id=99999999999999999999", None),
        ("POST", "/api/v1/holder/cards/%00/block", b'{"confirm": true}'),
        ("POST", "/api/v1/holder/login", b'{"login": "a\\u0000b", "password": "x"}'),
        ("POST", "/api/v1/holder/activate", b'{"code": "AB\\u0000CD", "login": "a@b.fr"}'),
    ):
        answer = client.request(method, path, content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
        assert answer.json()["message_fr"]
    assert client.get("/holder/static/../../etc/passwd").status_code == 404


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        st.sampled_from(["card_serial", "product_code", "amount_cents", "payment_means", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=20), st.booleans()),
    )
)
def test_purchase_fuzz_never_5xx(
    client: TestClient, world: dict[str, Any], body: dict[str, Any]
) -> None:
    answer = client.post("/api/v1/holder/purchases", json=body, headers=bearer(world, "marc"))
    assert answer.status_code < 500, answer.text


def test_page_and_static_files_are_served(client: TestClient) -> None:
    page = client.get("/holder/")
    assert page.status_code == 200 and "Mon espace carte" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/holder/static/holder.js").status_code == 200
    assert client.get("/holder/static/holder.css").status_code == 200
    assert ok(client.get("/api/v1/holder/config"))["oidc_enabled"] is False


def test_migration_matches_the_holder_page_models(db_url: str) -> None:
    """Autogenerate finds nothing to do for the tables of 0006."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from backend.db import make_engine
    from backend.models import load_all_models

    metadata = load_all_models()
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    mine = [op for op in diff if "holder_" in repr(op) or "balances_at" in repr(op)]
    assert mine == []


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(login=st.text(max_size=30), password=st.text(max_size=30), code=st.text(max_size=30))
def test_sign_in_fuzz_never_5xx(app: FastAPI, login: str, password: str, code: str) -> None:
    # From an address of its own: its failures throttle that address, not the other tests'.
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.5", 1)) as fuzzer:
        for path, body in (
            ("/api/v1/holder/login", {"login": login, "password": password}),
            ("/api/v1/holder/activate", {"code": code, "login": login, "password": password}),
        ):
            answer = fuzzer.post(path, json=body)
            assert answer.status_code < 500, answer.text


def test_migration_0006_up_down_up(empty_db_url: str, world: dict[str, Any]) -> None:
    """Down to 0005 and up again, with cards and accounts in the database (the last test here:
    the module's holder tables come back empty)."""
    from backend.migrate import current, downgrade, upgrade
    from tests.backend.conftest import table_names

    upgrade(empty_db_url)
    assert "holder_accounts" in table_names(empty_db_url)
    downgrade(empty_db_url, "0005_loop_storage")
    assert "holder_accounts" not in table_names(empty_db_url)
    assert current(empty_db_url) == {"0005_loop_storage"}
    upgrade(empty_db_url)
    assert {"holder_accounts", "holder_kept_trips"} <= table_names(empty_db_url)
