"""Ids beyond 64 bits, booleans as numbers, Unix timestamps as dates: a 4xx on both databases.

Found by fuzzing: an id of 2**63 gave a 500 (``OverflowError``) on SQLite, a JSON ``true`` was
taken as the amount or the id 1, and ``start: 0`` / ``day=0`` as 1 January 1970.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.backend.conftest import Auth, new_serial

HUGE_IDS = [2**31, 2**63, 2**64, 10**30]
CALLERS = ["supervisor", "agent", "auditor", "desk", "gate", "canteen"]


def _int_path_routes(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """(method, path template, integer path parameters) of every operation taking an integer id,
    read from the OpenAPI document (every included router's operations)."""
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            ints = [
                p["name"]
                for p in operation.get("parameters", [])
                if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"
            ]
            if ints:
                found.append((method.upper(), path, ints))
    return found


def test_every_integer_path_id_is_bounded(app: FastAPI, client: TestClient, auth: Auth) -> None:
    routes = _int_path_routes(app)
    # holders, desk jobs (4 routes + receipt), action confirmations at least
    assert len(routes) >= 7, routes
    for method, template, names in routes:
        for huge in HUGE_IDS:
            path = template
            for name in names:
                path = path.replace("{" + name + "}", str(huge))
            refused = []
            for who in CALLERS:
                answer = client.request(method, path, headers=auth(who), json={})
                assert answer.status_code < 500, (method, path, who, answer.text)
                refused.append(answer.status_code)
            # Someone was allowed past authentication and got the id refused.
            assert {404, 422} & set(refused), (method, path, refused)


@pytest.mark.parametrize(
    ("who", "path", "params"),
    [
        ("desk", "/api/v1/deny-lists/full", {"version": str(2**63)}),
        ("desk", "/api/v1/deny-lists/delta", {"since": str(2**64)}),
        ("agent", "/api/v1/desk/jobs", {"holder_id": str(2**63), "reason": "vérification"}),
        ("agent", f"/api/v1/holders/{2**63}", {"reason": "vérification"}),
        ("agent", "/api/v1/cards", {"holder_id": str(2**63), "reason": "vérification"}),
    ],
)
def test_huge_ids_in_queries_are_refused(
    client: TestClient, auth: Auth, who: str, path: str, params: dict[str, str]
) -> None:
    answer = client.get(path, params=params, headers=auth(who))
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["message_fr"]


def _card(holder_id: Any) -> dict[str, Any]:
    return {"holder_id": holder_id, "serial": new_serial(), "applications": ["plum"]}


@pytest.mark.parametrize(
    ("who", "path", "body", "field"),
    [
        ("agent", "/api/v1/cards", _card(2**63), "holder_id"),
        ("agent", "/api/v1/cards", _card(True), "holder_id"),
        (
            "agent",
            "/api/v1/entitlements/school-aid",
            {
                "holder_id": True,
                "purpose": "books",
                "amount_cents": 1000,
                "school_year": "2025-2026",
            },
            "holder_id",
        ),
        (
            "agent",
            "/api/v1/products/loads",
            {"card_serial": "00" * 8, "product_code": 1, "amount_cents": True},
            "amount_cents",
        ),
        (
            "supervisor",
            "/api/v1/products",
            {"code": True, "name": "Pass", "application": "plum", "amount_cents": 100},
            "code",
        ),
        (
            "supervisor",
            "/api/v1/reconciliation/clearing",
            {"period_id": "P1", "start": 0, "end": "2026-12-01T00:00:00Z"},
            "start",
        ),
        (
            "supervisor",
            "/api/v1/reconciliation/clearing",
            {
                "period_id": "P1",
                "start": "2026-11-01T00:00:00Z",
                "end": "2026-12-01T00:00:00Z",
                "pass_pool": False,
            },
            "pass_pool",
        ),
    ],
)
def test_out_of_range_or_boolean_numbers_in_bodies_are_422(
    client: TestClient, auth: Auth, who: str, path: str, body: dict[str, Any], field: str
) -> None:
    answer = client.post(path, json=body, headers=auth(who))
    assert answer.status_code == 422, answer.text
    assert any(field in d["loc"] for d in answer.json().get("details", [])), answer.text


@pytest.mark.parametrize("day", ["0", "1700000000", "-1"])
def test_open_data_day_must_be_an_iso_date(client: TestClient, auth: Auth, day: str) -> None:
    answer = client.get(
        "/api/v1/privacy/open-data", params={"day": day}, headers=auth("supervisor")
    )
    assert answer.status_code == 422, answer.text
    ok = client.get(
        "/api/v1/privacy/open-data", params={"day": "2026-11-27"}, headers=auth("supervisor")
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("start", ["0", "1700000000"])
def test_report_period_must_be_iso(client: TestClient, auth: Auth, start: str) -> None:
    params = {"start": start, "end": "2026-12-01T00:00:00Z"}
    answer = client.get(
        "/api/v1/reconciliation/operators", params=params, headers=auth("supervisor")
    )
    assert answer.status_code == 422, answer.text
    assert re.search("ISO", answer.json()["message_fr"])


def test_a_nul_character_in_text_is_refused_on_both_databases(
    client: TestClient, auth: Auth
) -> None:
    """Found by the API fuzzer: PostgreSQL cannot store NUL, and the insert was a 500."""
    search = client.get(
        "/api/v1/holders",
        params={"family_name": "Lefebvre", "reason": "vérif\x00"},
        headers=auth("agent"),
    )
    assert search.status_code == 422, search.text
    assert "caractère nul" in search.json()["message_fr"]
    created = client.post(
        "/api/v1/holders",
        json={"family_name": "Le\x00febvre", "given_name": "Inès"},
        headers=auth("agent"),
    )
    assert created.status_code == 422, created.text
