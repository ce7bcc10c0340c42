"""Privacy: no employment/social attribute in tap tables, 48-hour links, k-anonymity, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.audit.models import AuditEntry
from backend.db import transaction
from backend.errors import InvalidRequest
from backend.models import load_all_models
from backend.privacy.models import CardLink
from backend.privacy.service import k_anonymous_counts, purge_card_links, record_card_link
from tests.backend.conftest import Auth, new_serial

FORBIDDEN_WORDS = (
    "profile",
    "social",
    "employment",
    "emploi",
    "job",
    "status_code_holder",
    "age",
    "birth",
    "name",
    "holder",
    "category",
    "situation",
    "right",
    "partner",
    "income",
)
TAP_TABLES = ("taps", "card_links", "upload_batches")


@pytest.mark.parametrize("table", TAP_TABLES)
def test_tap_tables_have_no_employment_or_social_column(table: str) -> None:
    metadata = load_all_models()
    if table not in metadata.tables:
        pytest.skip(f"{table} is not written yet")  # a failure in CI
    columns = [c.name.lower() for c in metadata.tables[table].columns]
    for column in columns:
        for word in FORBIDDEN_WORDS:
            assert word not in column.split("_") and not column.startswith(word), (table, column)


def test_card_links_are_purged_after_48_hours(app: FastAPI) -> None:
    now = datetime.now(UTC)
    fresh, old = f"P1-{new_serial()}", f"P1-{new_serial()}"
    with transaction(app.state.sessionmaker) as session:
        record_card_link(session, fresh, new_serial(), now - timedelta(hours=47))
        record_card_link(session, old, new_serial(), now - timedelta(hours=49))
    with transaction(app.state.sessionmaker) as session:
        assert purge_card_links(session, now, timedelta(hours=72)) >= 1  # retention capped at 48 h
    with transaction(app.state.sessionmaker) as session:
        assert session.get(CardLink, fresh) is not None
        assert session.get(CardLink, old) is None


def test_purge_endpoint(client: TestClient, auth: Auth, app: FastAPI) -> None:
    with transaction(app.state.sessionmaker) as session:
        record_card_link(
            session, f"P2-{new_serial()}", new_serial(), datetime.now(UTC) - timedelta(days=3)
        )
    answer = client.post("/api/v1/privacy/purge", headers=auth("supervisor"))
    assert answer.status_code == 200 and answer.json()["card_links_deleted"] >= 1
    assert answer.json()["batch_bodies_deleted"] >= 0


def test_k_anonymity_suppresses_small_cells() -> None:
    hour = datetime(2025, 3, 5, 8, tzinfo=UTC)
    taps = [(10, hour + timedelta(minutes=i), f"card{i}") for i in range(12)]  # 12 cards
    taps += [(11, hour, f"card{i}") for i in range(9)]  # 9 cards: suppressed
    taps += [(12, hour, "same") for _ in range(30)]  # 30 taps, 1 card: suppressed
    taps += [(None, hour, f"card{i}") for i in range(20)]  # no station: never published
    cells, suppressed = k_anonymous_counts(taps, k=10)
    assert [(c.station_id, c.taps, c.cards) for c in cells] == [(10, 12, 12)]
    assert suppressed == 2
    with pytest.raises(InvalidRequest):
        k_anonymous_counts(taps, k=5)


def test_open_data_endpoint_answers(client: TestClient, auth: Auth) -> None:
    answer = client.get("/api/v1/privacy/open-data?day=2025-03-05", headers=auth("auditor"))
    if "taps" not in load_all_models().tables:
        pytest.skip("taps table not written yet")
    assert answer.status_code == 200, answer.text
    assert answer.json()["k"] >= 10


def test_every_desk_lookup_is_audited(client: TestClient, auth: Auth, app: FastAPI) -> None:
    holder = client.post(
        "/api/v1/holders",
        json={"family_name": "Lefebvre", "given_name": "Tom"},
        headers=auth("agent"),
    ).json()
    serial = new_serial()
    client.post(
        "/api/v1/cards",
        json={"holder_id": holder["id"], "serial": serial, "applications": ["plum"]},
        headers=auth("agent"),
    )
    lookups = [
        (
            f"/api/v1/holders/{holder['id']}?reason=appel du titulaire",
            "holder.read",
            f"holder:{holder['id']}",
        ),
        (
            "/api/v1/holders?family_name=Lefeb&reason=recherche guichet",
            "holder.search",
            "name:Lefeb",
        ),
        (f"/api/v1/cards/{serial}?reason=carte bloquée ?", "card.read", f"card:{serial}"),
        (
            f"/api/v1/cards?holder_id={holder['id']}&reason=duplicata",
            "card.list",
            f"holder:{holder['id']}",
        ),
    ]
    for path, action, subject in lookups:
        assert client.get(path, headers=auth("agent")).status_code == 200
        with transaction(app.state.sessionmaker) as session:
            row = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
            assert (row.agent, row.action, row.subject) == ("agent1", action, subject)
            assert row.reason and row.at <= datetime.now(UTC)
    trail = client.get("/api/v1/audit?agent=agent1", headers=auth("auditor")).json()
    assert {e["action"] for e in trail} >= {
        "holder.read",
        "holder.search",
        "card.read",
        "card.list",
    }
    no_reason = client.get(f"/api/v1/cards/{serial}", headers=auth("agent"))
    assert no_reason.status_code == 422
