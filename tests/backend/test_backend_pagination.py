"""List endpoints paginate: ``limit`` / ``offset`` and the ``X-Total-Count`` header."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.backend.conftest import Auth

# Lists that do not take limit/offset, and why.
NOT_PAGED = {
    "/api/v1/deny-lists/delta": "terminal protocol: every delta since a version, in order",
    "/api/v1/desk/desks": "the desk stations of the page's selector (a handful)",
    "/api/v1/desk/jobs": "one holder's jobs",
    "/api/v1/audit": "its own limit, newest first",
    "/api/v1/reconciliation/anomalies": "its own limit, newest first",
    "/api/v1/reconciliation/clearing/{period_id}": "one period's settlements",
}


def test_every_list_endpoint_takes_limit_and_offset(app: FastAPI) -> None:
    paged = []
    for path, item in app.openapi()["paths"].items():
        get = item.get("get")
        if get is None:
            continue
        schema = get["responses"].get("200", {}).get("content", {}).get("application/json", {})
        if schema.get("schema", {}).get("type") != "array" or path in NOT_PAGED:
            continue
        names = {p["name"] for p in get.get("parameters", [])}
        assert {"limit", "offset"} <= names, path
        paged.append(path)
    assert len(paged) >= 7, paged


def test_a_list_is_cut_into_pages(client: TestClient, auth: Auth) -> None:
    for n in range(5):
        product = {
            "code": 7300 + n,
            "fare_product_id": f"page_{n}",
            "name": f"Produit {n}",
            "application": "wallet",
            "amount_cents": 100 * n,
        }
        assert client.post("/api/v1/products", json=product, headers=auth("supervisor")).is_success
    everything = client.get("/api/v1/products", headers=auth("agent"))
    total = int(everything.headers["X-Total-Count"])
    assert total == len(everything.json()) >= 5
    pages = []
    for offset in range(0, total, 2):
        page = client.get(
            "/api/v1/products", params={"limit": 2, "offset": offset}, headers=auth("agent")
        )
        assert page.status_code == 200 and len(page.json()) <= 2
        assert page.headers["X-Total-Count"] == str(total)
        pages.extend(page.json())
    assert pages == everything.json()
    beyond = client.get("/api/v1/products", params={"offset": total}, headers=auth("agent"))
    assert beyond.json() == []
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "true"}):
        answer = client.get("/api/v1/products", params=bad, headers=auth("agent"))
        assert answer.status_code == 422, (bad, answer.text)
