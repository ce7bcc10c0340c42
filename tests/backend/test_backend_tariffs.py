"""Tariff tables on SQLite and PostgreSQL: publish, sign, serve; terminals verify what is served.

The order matters within the module (one database per module and kind): nothing is published
when the first test runs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.db import make_engine, make_sessionmaker, transaction
from backend.errors import InvalidRequest, NotFound
from backend.keys.service import KeyService
from backend.migrate import current, downgrade, upgrade
from backend.tariffs import service
from terminal.fares import load_tariff
from terminal.fares.errors import RollbackRefused, SignatureRefused, TariffError
from terminal.fares.signed import PushedTables, SignedEnvelope, accept_tariff
from terminal.fares.tariff import parse_tariff
from tests.backend.conftest import Auth, table_names

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "terminal/fares/data/default_tariff.json"
TERMINAL_KINDS = ("gate", "canteen", "bike_shelter", "inspector", "desk")


def default_table() -> dict[str, Any]:
    return dict(json.loads(DEFAULT_TABLE.read_text(encoding="utf-8")))


def public_key(client: TestClient) -> Ed25519PublicKey:
    raw = bytes.fromhex(client.get("/api/v1/deny-lists/public-key").json()["public_key"])
    return Ed25519PublicKey.from_public_bytes(raw)


def fetch(client: TestClient, headers: dict[str, str]) -> SignedEnvelope:
    answer = client.get("/api/v1/tariffs/current", headers=headers)
    assert answer.status_code == 200, answer.text
    return SignedEnvelope.from_json(answer.text)


def publish(client: TestClient, auth: Auth, table: dict[str, Any]) -> int:
    answer = client.post("/api/v1/tariffs", json=table, headers=auth("supervisor"))
    assert answer.status_code == 201, answer.text
    return int(answer.json()["version"])


def test_nothing_published_is_404_in_french(client: TestClient, auth: Auth) -> None:
    answer = client.get("/api/v1/tariffs/current", headers=auth("gate"))
    assert answer.status_code == 404
    assert answer.json()["message_fr"] == "aucun tarif publié"


def test_published_table_verifies_on_the_terminal(client: TestClient, auth: Auth) -> None:
    table = default_table()
    table["version"] = 99  # ignored: the backend numbers versions
    table["fare_products"][0]["amount"] = 190
    version = publish(client, auth, table)
    assert version == 2  # version 1 is the packaged table every terminal already holds
    envelope = fetch(client, auth("gate"))
    assert envelope.kind == "tariff" and envelope.version == version
    assert envelope.payload["version"] == version
    now = datetime.now(UTC)
    tables = PushedTables(public_key(client), load_tariff())
    installed = tables.offer_tariff(envelope, now)
    assert installed.version == version
    product = tables.tariff_at(now).product("TICKET_UNITAIRE")
    assert product is not None and product.amount == 190
    assert parse_tariff(envelope.payload).version == version
    with pytest.raises(RollbackRefused):  # the same envelope again: a replay, skipped
        tables.offer_tariff(fetch(client, auth("gate")), now)


@pytest.mark.parametrize("who", [*TERMINAL_KINDS, "agent", "supervisor", "auditor"])
def test_every_terminal_and_agent_reads_the_current_table(
    client: TestClient, auth: Auth, who: str
) -> None:
    envelope = fetch(client, auth(who))
    assert envelope.version >= 2
    accept_tariff(0, envelope, public_key(client), now=datetime.now(UTC))


def test_versions_increase_and_are_listed(client: TestClient, auth: Auth) -> None:
    first = fetch(client, auth("gate")).version
    second = publish(client, auth, default_table())
    third = publish(client, auth, default_table())
    assert first < second < third == fetch(client, auth("canteen")).version
    listed = client.get("/api/v1/tariffs", headers=auth("auditor"))
    assert listed.status_code == 200
    versions = [row["version"] for row in listed.json()]
    assert versions[:3] == [third, second, first] and versions == sorted(versions, reverse=True)
    assert listed.json()[0]["published_by"] == "supervisor1"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: {**e, "payload": {**e["payload"], "anti_passback_seconds": 0}},
        lambda e: {**e, "version": e["version"] + 1},
        lambda e: {**e, "issued_at": "2099-01-01T00:00:00+00:00"},
        lambda e: {**e, "signature": e["signature"][:-4] + "AAA="},
    ],
    ids=["payload", "version", "issued_at", "signature"],
)
def test_tampered_envelope_is_refused_and_the_previous_table_stays(
    client: TestClient, auth: Auth, tamper: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    answer = client.get("/api/v1/tariffs/current", headers=auth("gate"))
    now = datetime.now(UTC)
    tables = PushedTables(public_key(client), load_tariff())
    previous = tables.tariff
    bad = SignedEnvelope.from_json(json.dumps(tamper(answer.json())))
    with pytest.raises(SignatureRefused):
        tables.offer_tariff(bad, now)
    assert tables.tariff is previous and tables.pending_tariff is None
    assert tables.tariff_at(now).version == 1


@pytest.mark.parametrize("who", ["agent", "auditor", "gate", "canteen", "desk", "inspector"])
def test_only_supervisors_publish(client: TestClient, auth: Auth, who: str) -> None:
    before = fetch(client, auth("gate")).version
    answer = client.post("/api/v1/tariffs", json=default_table(), headers=auth(who))
    assert answer.status_code == 403, answer.text
    assert answer.json()["message"].startswith(answer.json()["message_fr"])
    assert fetch(client, auth("gate")).version == before


def test_no_credentials_is_401(client: TestClient) -> None:
    assert client.post("/api/v1/tariffs", json=default_table()).status_code == 401
    answer = client.get("/api/v1/tariffs/current")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    forged = {"Authorization": "Bearer rct_forged", "X-Regioncard-Terminal": "gate-x"}
    assert client.get("/api/v1/tariffs/current", headers=forged).status_code == 401
    assert client.get("/api/v1/tariffs", headers=forged).status_code == 403  # agents only


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(table: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = table
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()
BAD_TABLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "amount as text": _set("fare_products.0.amount", "1.80"),
    "amount as float": _set("fare_products.0.amount", 1.8),
    "amount as bool": _set("fare_products.0.amount", True),
    "negative amount": _set("fare_products.0.amount", -5),
    "missing products": _set("fare_products", _DELETE),
    "missing valid_from": _set("valid_from", _DELETE),
    "bad valid_from": _set("valid_from", "le 1er janvier"),
    "unknown key": _set("shoe_size", 42),
    "unknown product key": _set("fare_products.0.colour", "blue"),
    "products not a list": _set("fare_products", {"a": 1}),
    "other time zone": _set("timezone", "Europe/London"),
    "media not a card": _set("fare_media.0.fare_media_type", 0),
    "unknown mode": _set("networks.0.mode", "metro"),
    "unknown kind": _set("fare_products.0.kind", "gift"),
    "duplicate product": lambda t: t["fare_products"].append(dict(t["fare_products"][0])),
    "unknown media": _set("fare_products.0.fare_media_id", "ticket_papier"),
    "unknown rider": _set("fare_products.0.rider_category_id", "astronaut"),
    "unknown leg product": _set("leg_rules.0.fare_product_id", "NOPE"),
    "unknown leg area": _set("leg_rules.0.from_area_id", "zone_9"),
    "unknown leg group": _set("transfer_rules.0.to_leg_group_id", "nowhere"),
    "paid transfer": _set("transfer_rules.0.fare_transfer_type", 1),
    "reduction over 100": _set("reduced_fare_percent.student", 101),
    "unknown profile": _set("reduced_fare_percent.pirate", 10),
    "carnet without trips": _set("fare_products.1.trips", _DELETE),
    "aid not an entitlement": _set("mobility_aid_product_id", "TICKET_UNITAIRE"),
}

# Tables the terminals would still parse (lax integers, no sign check) but the backend refuses.
STRICTER_THAN_TERMINALS = {"amount as bool", "negative amount"}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_tables_are_refused_by_the_backend_and_by_terminals(
    client: TestClient, auth: Auth, name: str
) -> None:
    table = default_table()
    BAD_TABLES[name](table)
    answer = client.post("/api/v1/tariffs", json=table, headers=auth("supervisor"))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["message_fr"].startswith("table tarifaire invalide")
    assert body["message"].startswith(body["message_fr"])
    if name not in STRICTER_THAN_TERMINALS:
        with pytest.raises(TariffError):
            parse_tariff(table)


@pytest.mark.parametrize(
    "body",
    [b'{"valid_from": ', b"[1, 2]", b'"tarif"', b"{}"],
    ids=["malformed", "list", "string", "empty"],
)
def test_bodies_that_are_not_tables_are_422(client: TestClient, auth: Auth, body: bytes) -> None:
    headers = {**auth("supervisor"), "Content-Type": "application/json"}
    answer = client.post("/api/v1/tariffs", content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["message_fr"]


def test_what_the_backend_accepts_the_terminal_parses() -> None:
    table = default_table()
    del table["leg_rules"], table["transfer_rules"], table["accepted_networks"]
    checked = service.check_table(table)
    assert parse_tariff({**checked, "version": 5}).version == 5
    with pytest.raises(InvalidRequest):
        service.check_table([table])


def test_old_table_is_signed_again_on_read(app: FastAPI, client: TestClient) -> None:
    keys = app.state.keys
    later = datetime.now(UTC) + service.RESIGN_AFTER + timedelta(days=1)
    with transaction(app.state.sessionmaker) as session:
        before = service.current_envelope(session, keys)
        again = service.current_envelope(session, keys, now=later)
    assert again["version"] == before["version"] and again["payload"] == before["payload"]
    assert again["issued_at"] != before["issued_at"]
    envelope = SignedEnvelope.from_json(json.dumps(again))
    accept_tariff(0, envelope, public_key(client), now=later + timedelta(days=80))


def test_seed_file_is_published_once_as_version_1(keys: KeyService, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        with transaction(factory) as session, pytest.raises(NotFound, match="aucun tarif"):
            service.current_envelope(session, keys)
        with transaction(factory) as session, pytest.raises(NotFound, match="illisible"):
            service.current_envelope(session, keys, seed_file=tmp_path / "missing.json")
        with transaction(factory) as session:
            first = service.current_envelope(session, keys, seed_file=DEFAULT_TABLE)
        with transaction(factory) as session:
            second = service.current_envelope(session, keys, seed_file=DEFAULT_TABLE)
            assert service.current_version(session) == 1
        assert first == second and first["version"] == 1
        assert parse_tariff(first["payload"]) == load_tariff()
    finally:
        engine.dispose()


def test_migration_0004_up_down_up(empty_db_url: str) -> None:
    upgrade(empty_db_url)  # the module's database may be at the head already
    downgrade(empty_db_url, "0004_tariffs")
    assert "tariff_versions" in table_names(empty_db_url) and current(empty_db_url) == {
        "0004_tariffs"
    }
    downgrade(empty_db_url, "0003_desk")
    assert "tariff_versions" not in table_names(empty_db_url) and current(empty_db_url) == {
        "0003_desk"
    }
    upgrade(empty_db_url)
    assert "tariff_versions" in table_names(empty_db_url)


def test_copy_of_default_table_is_untouched() -> None:
    table = default_table()
    snapshot = copy.deepcopy(table)
    service.check_table(table)
    assert table == snapshot
