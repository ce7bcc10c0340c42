"""``POST /action-lists/{id}/confirm`` needs an uploaded card session that proves the write.

Before: a terminal could confirm any pending action with no card evidence at all.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.actions.models import ActionKind
from backend.actions.service import create_action
from backend.auth.roles import Application
from backend.columns import utcnow
from backend.db import transaction
from backend.uploads.router import validation_loop_of
from card_schema.uploads.records import TransactionKind
from tests.backend import validation_fixtures
from tests.backend.conftest import TERMINALS, Auth, demo_master_keys, new_serial
from tests.backend.validation_fixtures import TerminalSim, ctr


def _pending_action(app: FastAPI, serial: str) -> int:
    with transaction(app.state.sessionmaker) as session:
        action = create_action(
            session,
            card_serial=serial,
            application=Application.PLUM,
            kind=ActionKind.LOAD_CONTRACT,
            params={"product_code": 10},
            created_by="test",
        )
        return action.id


def test_a_confirmation_needs_the_uploaded_session(
    app: FastAPI, client: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation_fixtures, "TRACE_MASTER", demo_master_keys()["trace.debit.v1"])
    serial = new_serial()
    action_id = _pending_action(app, serial)
    confirm = f"/api/v1/action-lists/{action_id}/confirm"
    counter = ctr(7)
    body = {"card_serial": serial, "card_tx_counter": counter}

    refused = client.post(confirm, json=body, headers=auth("gate"))
    assert refused.status_code == 409, refused.text
    assert "téléversez d'abord le lot" in refused.json()["message_fr"]

    gate = TerminalSim(
        TERMINALS["gate"][0],
        sam_serial=bytes.fromhex("5A000000"),
        station_id=TERMINALS["gate"][1],
        private_key=auth.terminal_keys["gate"],
    )
    record = gate.record(bytes.fromhex(serial), counter, kind=TransactionKind.LOAD, at=utcnow())
    upload = client.post(
        "/api/v1/uploads",
        content=gate.batch([record]),
        headers={**auth("gate"), "Content-Type": "application/json"},
    )
    assert upload.status_code == 200, upload.text
    validation_loop_of(app).run_once()

    # Another counter, or another terminal, proves nothing.
    other = {"card_serial": serial, "card_tx_counter": ctr(8)}
    assert client.post(confirm, json=other, headers=auth("gate")).status_code == 409
    assert client.post(confirm, json=body, headers=auth("bike_shelter")).status_code == 409
    confirmed = client.post(confirm, json=body, headers=auth("gate"))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
