"""Desk jobs API on SQLite and PostgreSQL: roles, the station's protocol, audit, receipt, migration.

The station side is driven here by hand (the real station: tests/terminal/desk/): attach a blank
card's snapshot, report each step, and the job is done.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.audit.models import AuditEntry
from backend.db import transaction
from backend.migrate import current, downgrade, upgrade
from tests.backend.conftest import TERMINALS, Auth, new_serial, table_names

DESK = TERMINALS["desk"][0]
JOBS = "/api/v1/desk/jobs"


@pytest.fixture(scope="module")
def catalogue(client: TestClient, auth: Auth) -> None:
    for code, fare_id, app, price, trips in (
        (10, "pass_mois", "plum", 4500, None),
        (2, "carnet", "plum", 1450, 10),
        (900, "recharge", "wallet", 0, None),
    ):
        answer = client.post(
            "/api/v1/products",
            json={
                "code": code,
                "fare_product_id": fare_id,
                "name": fare_id,
                "application": app,
                "amount_cents": price,
                "trips": trips,
            },
            headers=auth("supervisor"),
        )
        assert answer.status_code == 201, answer.text


def holder(client: TestClient, auth: Auth, family: str = "Lefebvre") -> int:
    answer = client.post(
        "/api/v1/holders", json={"family_name": family, "given_name": "Inès"}, headers=auth("agent")
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def job_body(**extra: Any) -> dict[str, Any]:
    return {"desk_terminal_id": DESK, **extra}


def blank_snapshot() -> dict[str, Any]:
    return {"records": {}, "sv": {"tnum": 0, "balance": 0}}


def run_station(client: TestClient, auth: Auth) -> dict[str, Any]:
    """Take the next job, attach a blank card, report every step."""
    taken = client.get(f"{JOBS}/next", headers=auth("desk"))
    assert taken.status_code == 200, taken.text
    job = taken.json()
    assert job["status"] == "waiting_card"
    attached = client.post(
        f"{JOBS}/{job['id']}/card",
        json={"card_serial": new_serial()[:16], "snapshot": blank_snapshot()},
        headers=auth("desk"),
    )
    assert attached.status_code == 200, attached.text
    plan = attached.json()["plan"]
    assert all(len(bytes.fromhex(k["wrapped_key"])) == 24 for k in plan["keys"])
    counter = 0xFFFFFE
    for step in plan["steps"]:
        reported = client.post(
            f"{JOBS}/{job['id']}/progress",
            json={"step_id": step["id"], "card_tx_counter": counter},
            headers=auth("desk"),
        )
        assert reported.status_code == 200, reported.text
        counter -= 1
    return dict(client.get(f"{JOBS}/{job['id']}", headers=auth("agent")).json())


def test_issue_job_through_the_station_protocol(
    client: TestClient, auth: Auth, catalogue: None
) -> None:
    created = client.post(
        JOBS,
        json=job_body(
            holder_id=holder(client, auth),
            applications=["plum", "wallet"],
            contracts=[10],
            wallet_reload_cents=1250,
        ),
        headers=auth("agent"),
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "queued"
    done = run_station(client, auth)
    assert done["status"] == "done" and done["message"] == "Carte émise"
    assert done["steps_done"] == done["steps_total"] == 4
    assert client.get(f"{JOBS}/next", headers=auth("desk")).status_code == 204
    receipt = client.get(done["receipt_url"], headers=auth("agent"))
    assert receipt.status_code == 200 and receipt.headers["content-type"] == "application/pdf"
    assert receipt.content.startswith(b"%PDF-")
    for text in (b"Hauts-de-France", b"Lefebvre", done["card_serial"].encode(), b"12,50"):
        assert text in receipt.content, text
    actions = client.get(
        f"/api/v1/action-lists/cards/{done['card_serial']}", headers=auth("agent")
    ).json()
    assert {a["status"] for a in actions} == {"confirmed"}


def test_anonymous_card_receipt_names_no_one(
    client: TestClient, auth: Auth, catalogue: None
) -> None:
    created = client.post(
        JOBS, json=job_body(anonymous=True, applications=["plum"]), headers=auth("agent")
    )
    assert created.status_code == 201, created.text
    done = run_station(client, auth)
    receipt = client.get(done["receipt_url"], headers=auth("agent")).content
    assert b"Carte anonyme" in receipt


def test_progress_shows_interruption_and_resumes(client: TestClient, auth: Auth) -> None:
    created = client.post(
        JOBS,
        json=job_body(holder_id=holder(client, auth), applications=["plum", "cursus"]),
        headers=auth("agent"),
    ).json()
    job = client.get(f"{JOBS}/next", headers=auth("desk")).json()
    serial = new_serial()
    plan = client.post(
        f"{JOBS}/{job['id']}/card",
        json={"card_serial": serial, "snapshot": blank_snapshot()},
        headers=auth("desk"),
    ).json()["plan"]
    first = plan["steps"][0]["id"]
    client.post(
        f"{JOBS}/{job['id']}/progress",
        json={"step_id": first, "card_tx_counter": 1},
        headers=auth("desk"),
    )
    message = "Carte retirée pendant l'écriture — reposez-la pour reprendre"
    client.post(
        f"{JOBS}/{job['id']}/progress",
        json={"status": "interrupted", "message": message},
        headers=auth("desk"),
    )
    state = client.get(f"{JOBS}/{created['id']}", headers=auth("agent")).json()
    assert (state["status"], state["message"], state["steps_done"]) == ("interrupted", message, 1)
    again = client.get(f"{JOBS}/next", headers=auth("desk")).json()  # its own unfinished job
    assert again["id"] == job["id"] and again["steps_done"] == [first]
    other = client.post(
        f"{JOBS}/{job['id']}/card",
        json={"card_serial": new_serial(), "snapshot": {}},
        headers=auth("desk"),
    )
    assert other.status_code == 409 and "pas la carte" in other.json()["message_fr"]
    same = client.post(
        f"{JOBS}/{job['id']}/card",
        json={"card_serial": serial, "snapshot": {}},
        headers=auth("desk"),
    )
    assert same.json()["plan"] == plan  # the plan is made once
    for step in plan["steps"]:  # a step reported twice is a no-op
        client.post(
            f"{JOBS}/{job['id']}/progress", json={"step_id": step["id"]}, headers=auth("desk")
        )
    assert client.get(f"{JOBS}/{job['id']}", headers=auth("agent")).json()["status"] == "done"
    late = client.post(
        f"{JOBS}/{job['id']}/progress", json={"status": "writing"}, headers=auth("desk")
    )
    assert late.status_code == 409


@pytest.mark.parametrize("who", ["auditor", "desk", "gate", "none"])
def test_only_writing_agents_create_jobs(client: TestClient, auth: Auth, who: str) -> None:
    answer = client.post(
        JOBS, json=job_body(anonymous=True, applications=["plum"]), headers=auth(who)
    )
    assert answer.status_code == (401 if who == "none" else 403)


@pytest.mark.parametrize("who", ["agent", "supervisor", "gate", "canteen", "none"])
def test_only_desk_terminals_take_jobs(client: TestClient, auth: Auth, who: str) -> None:
    answer = client.get(f"{JOBS}/next", headers=auth(who))
    assert answer.status_code == (401 if who == "none" else 403)


def test_bad_requests(client: TestClient, auth: Auth, catalogue: None) -> None:
    h = holder(client, auth)
    cases = [
        (job_body(holder_id=h), 422),  # no application
        (job_body(applications=["plum"]), 422),  # no holder, not anonymous
        (job_body(holder_id=h, applications=["plum"], wallet_reload_cents=100), 409),
        (job_body(holder_id=h, applications=["wallet"], contracts=[10]), 409),
        (job_body(holder_id=h, applications=["plum"], contracts=[4242]), 404),
        ({"desk_terminal_id": "nope", "holder_id": h, "applications": ["plum"]}, 404),
        (job_body(kind="update"), 422),
        (job_body(holder_id=h, applications=["plum"], wallet_reload_cents=-1), 422),
    ]
    for body, code in cases:
        answer = client.post(JOBS, json=body, headers=auth("agent"))
        assert answer.status_code == code, (body, answer.text)
        assert answer.json()["message_fr"]


def test_a_non_blank_card_is_refused_for_an_issue(client: TestClient, auth: Auth) -> None:
    client.post(
        JOBS,
        json=job_body(holder_id=holder(client, auth), applications=["plum"]),
        headers=auth("agent"),
    )
    job = client.get(f"{JOBS}/next", headers=auth("desk")).json()
    used = {"records": {"plum.environment": ["01" * 29]}, "sv": {"tnum": 3, "balance": 0}}
    answer = client.post(
        f"{JOBS}/{job['id']}/card",
        json={"card_serial": new_serial(), "snapshot": used},
        headers=auth("desk"),
    )
    assert answer.status_code == 409 and "vierge" in answer.json()["message_fr"]
    client.post(
        f"{JOBS}/{job['id']}/progress",
        json={"status": "failed", "message": "carte non vierge"},
        headers=auth("desk"),
    )


def test_job_history_lookup_is_audited(client: TestClient, auth: Auth, app: FastAPI) -> None:
    h = holder(client, auth, "Audit")
    assert client.get(JOBS, params={"holder_id": h}, headers=auth("agent")).status_code == 422
    answer = client.get(
        JOBS, params={"holder_id": h, "reason": "suivi de demande"}, headers=auth("agent")
    )
    assert answer.status_code == 200
    with transaction(app.state.sessionmaker) as session:
        rows = session.scalars(
            select(AuditEntry).where(
                AuditEntry.subject == f"holder:{h}", AuditEntry.action == "desk.jobs"
            )
        ).all()
        assert [(r.agent, r.reason) for r in rows] == [("agent1", "suivi de demande")]


def test_page_and_static_files_are_french_and_self_contained(client: TestClient) -> None:
    page = client.get("/desk/")
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert "Émettre une carte" in page.text and "Motif de la consultation" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body")[0].replace("http-equiv", "")  # no CDN
    assert client.get("/desk/static/desk.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/desk/static/desk.css").status_code == 200
    assert client.get("/desk/static/../router.py").status_code == 404
    assert client.get("/desk/static/secret.py").status_code == 404


def test_migration_0003_up_down_up(empty_db_url: str) -> None:
    # The module's database may already be at the head (fixtures share it): go there first.
    upgrade(empty_db_url)
    assert "desk_jobs" in table_names(empty_db_url)
    downgrade(empty_db_url, "0002_validation")
    assert "desk_jobs" not in table_names(empty_db_url) and current(empty_db_url) == {
        "0002_validation"
    }
    upgrade(empty_db_url, "0003_desk")
    assert "desk_jobs" in table_names(empty_db_url) and current(empty_db_url) == {"0003_desk"}
    upgrade(empty_db_url)  # back to the head for the module's other tests
