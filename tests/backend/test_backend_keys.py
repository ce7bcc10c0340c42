"""Keys really live in SoftHSM2: not extractable, and what they sign, terminals accept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from fastapi.testclient import TestClient

from backend.errors import KeyStoreError
from backend.keys.service import TABLE_SIGNING_LABEL, KeyService
from card_schema.crypto import card_key
from card_schema.layout import CARD_LAYOUT
from card_schema.traceability import sam_trace_key, traceable_signature, verify_traceable_signature
from terminal.fares.denylist import DenyList
from terminal.fares.errors import RollbackRefused, SignatureRefused
from terminal.fares.signed import SignedEnvelope, accept_deny_list
from tests.backend.conftest import TERMINALS, Auth, demo_master_keys, new_serial


@pytest.mark.parametrize(
    "label", [TABLE_SIGNING_LABEL, "trace.debit.v1", "plum.issuer.v1", "desk.transport.v1"]
)
def test_keys_are_sensitive_and_not_extractable(keys: KeyService, label: str) -> None:
    assert keys.key_attributes(label) == {"sensitive": True, "extractable": False}
    with pytest.raises(KeyStoreError, match="refuses to reveal"):
        keys.key_value(label)


def test_table_signing_is_ed25519_in_the_token(keys: KeyService) -> None:
    signature = keys.sign_table(b"deny-list bytes")
    assert len(signature) == 64
    keys.table_signing_public_key().verify(signature, b"deny-list bytes")


def test_sam_trace_key_matches_the_software_definition(keys: KeyService) -> None:
    master = demo_master_keys()["trace.debit.v1"]
    serial = bytes.fromhex("5A000001")
    derived = keys.sam_trace_key(serial)
    assert derived == sam_trace_key(master, serial)
    record = b"a transaction record"
    signed = serial + (7).to_bytes(3, "big") + traceable_signature(derived, serial, 7, record)
    assert verify_traceable_signature(derived, signed, record).sam_counter == 7


def test_wrapped_card_keys_unwrap_to_the_an10922_card_keys(
    client: TestClient, auth: Auth, keys: KeyService
) -> None:
    serial, job_id = _card_on_the_desk(client, auth, ["plum", "cursus"])
    answer = client.post(
        "/api/v1/personalisation",
        json={"card_serial": serial, "applications": ["plum", "cursus"]},
        headers=auth("desk"),
    )
    assert answer.status_code == 200, answer.text
    masters = demo_master_keys()
    transport = masters["desk.transport.v1"]
    got = answer.json()["keys"]
    assert len(got) == 6
    for item in got:
        clear = aes_key_unwrap(transport, bytes.fromhex(item["wrapped_key"]))
        app = CARD_LAYOUT.application(item["application"])
        master = masters[f"{item['application']}.{item['role']}.v1"]
        assert clear == card_key(master, bytes.fromhex(serial), app.aid)
        assert clear.hex() not in answer.text
    audits = client.get("/api/v1/audit", headers=auth("auditor")).json()
    assert any(
        a["action"] == "personalisation"
        and a["subject"] == f"card:{serial}"
        and str(job_id) in a["reason"]
        for a in audits
    )
    _finish(client, auth, job_id)


def test_personalisation_encodes_records_and_refuses_bad_ones(
    client: TestClient, auth: Auth
) -> None:
    serial, job_id = _card_on_the_desk(client, auth, ["plum"])
    bad = {
        "card_serial": serial,
        "applications": ["plum"],
        "records": [{"record_type": "plum.nothing", "values": {}}],
    }
    answer = client.post("/api/v1/personalisation", json=bad, headers=auth("desk"))
    assert answer.status_code == 422 and "plum.nothing" in answer.json()["message"]
    other = {"card_serial": serial, "applications": ["cursus"]}
    assert (
        client.post("/api/v1/personalisation", json=other, headers=auth("desk")).status_code == 409
    )
    _finish(client, auth, job_id)


def test_personalisation_needs_an_open_desk_job_for_the_card(
    client: TestClient, auth: Auth
) -> None:
    """Before: any desk terminal got the wrapped keys of any active card."""
    holder = client.post("/api/v1/holders", json={"anonymous": True}, headers=auth("agent")).json()
    serial = new_serial()
    registered = client.post(
        "/api/v1/cards",
        json={"holder_id": holder["id"], "serial": serial, "applications": ["plum"]},
        headers=auth("agent"),
    )
    assert registered.status_code == 201, registered.text
    body = {"card_serial": serial, "applications": ["plum"]}
    answer = client.post("/api/v1/personalisation", json=body, headers=auth("desk"))
    assert answer.status_code == 403, answer.text
    assert answer.json()["message_fr"].startswith("aucune demande en cours")
    assert "wrapped_key" not in answer.text
    # The job finished: no more keys for that card either.
    serial, job_id = _card_on_the_desk(client, auth, ["plum"])
    body = {"card_serial": serial, "applications": ["plum"]}
    assert client.post("/api/v1/personalisation", json=body, headers=auth("desk")).is_success
    _finish(client, auth, job_id)
    assert (
        client.post("/api/v1/personalisation", json=body, headers=auth("desk")).status_code == 403
    )


JOBS = "/api/v1/desk/jobs"


def _card_on_the_desk(client: TestClient, auth: Auth, applications: list[str]) -> tuple[str, int]:
    """A blank card on the desk station's reader for a new issue job: (serial, job id)."""
    holder = client.post("/api/v1/holders", json={"anonymous": True}, headers=auth("agent")).json()
    created = client.post(
        JOBS,
        json={
            "desk_terminal_id": TERMINALS["desk"][0],
            "holder_id": holder["id"],
            "applications": applications,
        },
        headers=auth("agent"),
    )
    assert created.status_code == 201, created.text
    taken = client.get(f"{JOBS}/next", headers=auth("desk")).json()
    assert taken["id"] == created.json()["id"]
    serial = new_serial()
    attached = client.post(
        f"{JOBS}/{taken['id']}/card",
        json={"card_serial": serial, "snapshot": {"records": {}, "sv": {"tnum": 0, "balance": 0}}},
        headers=auth("desk"),
    )
    assert attached.status_code == 200, attached.text
    return serial, int(taken["id"])


def _finish(client: TestClient, auth: Auth, job_id: int) -> None:
    """Stop the job for good (so the station's next job is a new one)."""
    answer = client.post(
        f"{JOBS}/{job_id}/progress",
        json={"status": "failed", "message": "test terminé"},
        headers=auth("desk"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "failed"


def test_pseudonyms_are_stable_in_a_period_and_rotate(keys: KeyService) -> None:
    now = datetime(2025, 3, 5, 12, tzinfo=UTC)
    serial = bytes.fromhex("0102030405060708")
    first = keys.pseudonym(serial, now)
    assert keys.pseudonym(serial, now + timedelta(hours=1)) == first
    assert keys.pseudonym(serial, now + timedelta(days=8)) != first
    assert keys.pseudonym(bytes(8), now) != first
    assert serial.hex() not in first.lower()
    assert keys.retire_pseudonym_keys(now + timedelta(days=30)) >= 2
    assert keys.pseudonym(serial, now) != first  # the old key is gone: the link is broken


def _envelope(answer: object) -> SignedEnvelope:
    return SignedEnvelope.from_json(json.dumps(answer))


def test_terminal_accepts_the_deny_list_the_backend_signed(
    client: TestClient, auth: Auth, keys: KeyService
) -> None:
    raw = bytes.fromhex(client.get("/api/v1/deny-lists/public-key").json()["public_key"])
    public = Ed25519PublicKey.from_public_bytes(raw)
    holder = client.post("/api/v1/holders", json={"anonymous": True}, headers=auth("agent")).json()
    lost = new_serial()
    client.post(
        "/api/v1/cards",
        json={"holder_id": holder["id"], "serial": lost, "applications": ["plum"]},
        headers=auth("agent"),
    )
    before = client.get("/api/v1/deny-lists/full", headers=auth("gate"))
    base = before.json()["version"] if before.status_code == 200 else 0
    answer = client.post(
        f"/api/v1/cards/{lost}/block", json={"reason": "perdue"}, headers=auth("agent")
    )
    assert answer.status_code == 200 and answer.json()["status"] == "blocked"
    now = datetime.now(UTC)

    full = _envelope(client.get("/api/v1/deny-lists/full", headers=auth("gate")).json())
    listed = accept_deny_list(DenyList(), full, public, now=now)
    assert lost in listed.serials

    start = (
        accept_deny_list(DenyList(), _envelope(before.json()), public, now=now)
        if base
        else DenyList()
    )
    deltas = client.get(f"/api/v1/deny-lists/delta?since={base}", headers=auth("gate")).json()
    current = start
    for item in deltas:
        current = accept_deny_list(current, _envelope(item), public, now=now)
    assert current.serials == listed.serials and current.version == full.version

    with pytest.raises(RollbackRefused):
        accept_deny_list(listed, full, public, now=now)
    tampered = SignedEnvelope(
        full.kind, full.version + 1, full.issued_at, {"serials": []}, full.signature
    )
    with pytest.raises(SignatureRefused):
        accept_deny_list(listed, tampered, public, now=now)
