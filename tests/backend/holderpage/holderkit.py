"""A holder with cards, aid, rights, a desk lookup and a school, made through the backend's API.

Shared by the API tests (TestClient) and the browser tests (httpx against uvicorn): both clients
have the same ``get``/``post`` surface. The balances the validation loop would remember from a
tap are written with :func:`backend.cards.service.update_known_balance`, the function the loop
is documented to call (docs/backend.md, Block and replace).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backend.cards.service import update_known_balance
from backend.db import transaction

MENU_SCHOOL = "0801234G"  # a school of terminal/canteen/data/menus.json
PASS_CODE, CARNET_CODE, RELOAD_CODE = 9101, 9102, 9103
PRODUCTS = (
    (PASS_CODE, "plum_mensuel_hp", "Abonnement mensuel PLUM", "plum", 3000, 30, None),
    (CARNET_CODE, "plum_carnet10_hp", "Carnet 10 voyages PLUM", "plum", 1450, None, 10),
    (RELOAD_CODE, "wallet_reload_hp", "Rechargement du porte-monnaie", "wallet", 0, None, None),
)
SEEN_AT = datetime(2026, 11, 27, 7, 42, tzinfo=UTC)


def new_serial() -> str:
    """A fresh 8-byte card serial (upper-case hex)."""
    return secrets.token_hex(8).upper()


def ok(answer: Any, status: int = 200) -> Any:
    """The JSON of an answer that must have ``status``."""
    assert answer.status_code == status, answer.text
    return answer.json()


def add_products(client: Any, supervisor: dict[str, str]) -> None:
    """The three products sold on the holder's page."""
    for code, fare_id, name, application, price, days, trips in PRODUCTS:
        answer = client.post(
            "/api/v1/products",
            json={
                "code": code,
                "fare_product_id": fare_id,
                "name": name,
                "application": application,
                "amount_cents": price,
                "duration_days": days,
                "trips": trips,
            },
            headers=supervisor,
        )
        assert answer.status_code in (201, 409), answer.text


@dataclass
class Person:
    """A holder made for a test."""

    holder_id: int
    serial: str
    given_name: str
    family_name: str


def make_person(
    client: Any,
    app: Any,
    agent: dict[str, str],
    *,
    given_name: str,
    family_name: str,
    birth_date: str,
    desk_id: str | None = None,
    seen: bool = True,
) -> Person:
    """A holder with one card (4 applications), book aid, an employment right, known balances,
    one audited desk lookup and (with ``desk_id``) a desk job naming their school."""
    holder = ok(
        client.post(
            "/api/v1/holders",
            json={"family_name": family_name, "given_name": given_name, "birth_date": birth_date},
            headers=agent,
        ),
        201,
    )
    serial = new_serial()
    ok(
        client.post(
            "/api/v1/cards",
            json={
                "holder_id": holder["id"],
                "serial": serial,
                "applications": ["plum", "wallet", "cursus", "employment"],
            },
            headers=agent,
        ),
        201,
    )
    ok(
        client.post(
            "/api/v1/entitlements/school-aid",
            json={
                "holder_id": holder["id"],
                "school_year": "2026-2027",
                "purpose": "books",
                "funder": "region",
                "amount_cents": 5000,
            },
            headers=agent,
        ),
        201,
    )
    ok(
        client.post(
            "/api/v1/entitlements/employment-rights",
            json={
                "holder_id": holder["id"],
                "partner": "mission_locale",
                "right_code": 1,
                "valid_from": "2026-09-01",
                "valid_to": "2027-08-31",
                "hours": 40,
            },
            headers=agent,
        ),
        201,
    )
    ok(
        client.get(
            f"/api/v1/holders/{holder['id']}",
            params={"reason": "demande de duplicata au guichet"},
            headers=agent,
        )
    )
    if desk_id is not None:
        ok(
            client.post(
                "/api/v1/desk/jobs",
                json={
                    "kind": "update",
                    "desk_terminal_id": desk_id,
                    "holder_id": holder["id"],
                    "card_serial": serial,
                    "student": {"school_uai": MENU_SCHOOL, "level": "seconde"},
                },
                headers=agent,
            ),
            201,
        )
    if seen:
        with transaction(app.state.sessionmaker) as session:
            update_known_balance(session, serial, "wallet.sv", 1250, 0xFFFF10, seen_at=SEEN_AT)
            update_known_balance(
                session, serial, "cursus.books_aid", 3200, 0xFFFF10, seen_at=SEEN_AT
            )
    return Person(holder["id"], serial, given_name, family_name)


def activation_code(client: Any, agent: dict[str, str], holder_id: int) -> str:
    """The one-time code an agent hands out at the desk."""
    return str(
        ok(
            client.post(
                "/api/v1/holder/activation-codes",
                json={"holder_id": holder_id, "reason": "ouverture de l'espace en ligne"},
                headers=agent,
            ),
            201,
        )["code"]
    )


def sign_up(client: Any, agent: dict[str, str], holder_id: int, login: str, password: str) -> str:
    """Activate a holder's page; return the holder's bearer headers' token."""
    code = activation_code(client, agent, holder_id)
    token = ok(
        client.post(
            "/api/v1/holder/activate",
            json={"code": code, "login": login, "password": password},
        ),
        201,
    )
    return str(token["access_token"])
