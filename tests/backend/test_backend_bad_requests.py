"""Bad requests get a 4xx with a clear message (French then English), never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backend.conftest import Auth

ENDPOINTS = [
    ("agent", "/api/v1/holders"),
    ("agent", "/api/v1/cards"),
    ("agent", "/api/v1/products/loads"),
    ("agent", "/api/v1/entitlements/school-aid"),
    ("agent", "/api/v1/entitlements/employment-rights"),
    ("supervisor", "/api/v1/terminals"),
    ("supervisor", "/api/v1/products"),
    ("desk", "/api/v1/personalisation"),
    ("canteen", "/api/v1/products/terminal-loads"),
]


def _check_clear_4xx(answer: Any, expected: int | None = None) -> None:
    assert 400 <= answer.status_code < 500, answer.text
    if expected is not None:
        assert answer.status_code == expected, answer.text
    body = answer.json()
    assert body["message_fr"] and body["message_en"]
    assert body["message"].startswith(body["message_fr"])


@pytest.mark.parametrize(("who", "path"), ENDPOINTS)
def test_malformed_json_is_422(client: TestClient, auth: Auth, who: str, path: str) -> None:
    headers = {**auth(who), "Content-Type": "application/json"}
    answer = client.post(path, content=b'{"holder_id": 1, "serial": ', headers=headers)
    _check_clear_4xx(answer, 422)
    assert answer.json()["message_en"] == "malformed JSON body"


@pytest.mark.parametrize(
    ("who", "path", "body", "field"),
    [
        (
            "agent",
            "/api/v1/cards",
            {"holder_id": "one", "serial": "00", "applications": ["plum"]},
            "holder_id",
        ),
        (
            "agent",
            "/api/v1/cards",
            {"holder_id": 1, "serial": "XYZ", "applications": ["plum"]},
            "serial",
        ),
        (
            "agent",
            "/api/v1/cards",
            {"holder_id": 1, "serial": "0011", "applications": ["metro"]},
            "applications",
        ),
        ("agent", "/api/v1/holders", {"anonymous": True, "family_name": "Dupont"}, "body"),
        (
            "agent",
            "/api/v1/holders",
            {"family_name": "Dupont", "given_name": "Jo", "shoe_size": 42},
            "shoe_size",
        ),
        (
            "agent",
            "/api/v1/entitlements/school-aid",
            {
                "holder_id": 1,
                "school_year": "2025-2027",
                "purpose": "books",
                "funder": "r",
                "amount_cents": 1,
            },
            "body",
        ),
        (
            "agent",
            "/api/v1/products/loads",
            {"card_serial": "0011", "product_code": -4},
            "product_code",
        ),
        (
            "supervisor",
            "/api/v1/terminals",
            {"terminal_id": "bad id with spaces", "kind": "gate"},
            "terminal_id",
        ),
        ("supervisor", "/api/v1/terminals", {"terminal_id": "t-1", "kind": "toaster"}, "kind"),
    ],
)
def test_wrong_types_name_the_field(
    client: TestClient, auth: Auth, who: str, path: str, body: Any, field: str
) -> None:
    answer = client.post(path, json=body, headers=auth(who))
    _check_clear_4xx(answer, 422)
    assert field in answer.json()["message"]


def test_query_and_path_types(client: TestClient, auth: Auth) -> None:
    _check_clear_4xx(client.get("/api/v1/holders/abc?reason=test", headers=auth("agent")), 422)
    _check_clear_4xx(client.get("/api/v1/holders/1", headers=auth("agent")), 422)  # no reason
    _check_clear_4xx(client.get("/api/v1/deny-lists/delta?since=-1", headers=auth("gate")), 422)
    _check_clear_4xx(client.get("/api/v1/deny-lists/delta?since=99999", headers=auth("gate")), 422)
    _check_clear_4xx(client.get("/api/v1/cards/ZZ?reason=test", headers=auth("agent")), 422)
    _check_clear_4xx(client.get("/api/v1/cards/0011?reason=test", headers=auth("agent")), 404)
    _check_clear_4xx(client.get("/api/v1/no-such-thing"), 404)


def test_oversized_body_is_413(client: TestClient, auth: Auth) -> None:
    big = json.dumps({"family_name": "x" * 100_000, "given_name": "y"}).encode()
    answer = client.post(
        "/api/v1/holders",
        content=big,
        headers={**auth("agent"), "Content-Type": "application/json"},
    )
    _check_clear_4xx(answer, 413)


def test_oversized_chunked_body_is_413(client: TestClient, auth: Auth) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    answer = client.post(
        "/api/v1/holders",
        content=chunks(),
        headers={**auth("agent"), "Content-Type": "application/json"},
    )
    _check_clear_4xx(answer, 413)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=JSON, index=st.integers(min_value=0, max_value=len(ENDPOINTS) - 1))
def test_any_json_body_never_gives_5xx(
    client: TestClient, auth: Auth, body: Any, index: int
) -> None:
    who, path = ENDPOINTS[index]
    answer = client.post(path, json=body, headers=auth(who))
    assert answer.status_code < 500, answer.text


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_any_bytes_never_give_5xx(client: TestClient, auth: Auth, raw: bytes) -> None:
    answer = client.post(
        "/api/v1/cards", content=raw, headers={**auth("agent"), "Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
