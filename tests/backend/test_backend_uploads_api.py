"""``POST /api/v1/uploads`` on SQLite and PostgreSQL: idempotency, concurrency, bad requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings
from backend.uploads.router import validation_loop_of
from card_schema.uploads.batch import Ack, AckStatus
from card_schema.uploads.records import TransactionKind, canonical_json
from tests.backend.validation_fixtures import (
    FakeKeys,
    KeyRing,
    TerminalSim,
    VLDatabase,
    ctr,
    movement,
    register_gate,
    vl_db,
)

__all__ = ["vl_db"]

CARD = bytes.fromhex("0000000012345678")


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    gate: TerminalSim
    headers: dict[str, str]
    db: VLDatabase


@pytest.fixture
def api(vl_db: VLDatabase, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        var_dir=tmp_path,
        database_url=vl_db.url,
        auto_migrate=False,
        jwt_secret="test-secret-" + "x" * 32,
        max_batch_bytes=64 * 1024,
        max_batch_records=50,
    )
    app = create_app(settings, keys=FakeKeys(), engine=vl_db.engine)
    app.state.validation_auto = False
    gate = TerminalSim("GATE-LIL-0042")
    with vl_db.factory() as session, session.begin():
        headers = {**register_gate(session, gate), "Content-Type": "application/json"}
    yield Api(app, TestClient(app, raise_server_exceptions=False), gate, headers, vl_db)


def _batch(gate: TerminalSim, counter: int = ctr(1)) -> bytes:
    return gate.batch(
        [
            gate.record(
                CARD,
                counter,
                kind=TransactionKind.SV_DEBIT,
                application="wallet",
                movements=[movement("wallet.sv", -180, 1000)],
            )
        ]
    )


def _ack(response: object) -> Ack:
    return Ack.decode(response.content)  # type: ignore[attr-defined]


def test_upload_is_acknowledged_then_processed(api: Api) -> None:
    body = _batch(api.gate)
    response = api.client.post("/api/v1/uploads", content=body, headers=api.headers)
    assert response.status_code == 200
    ack = _ack(response)
    assert ack.status is AckStatus.ACCEPTED and ack.batch_id == "GATE-LIL-0042:1001-1001"
    assert api.db.scalar("SELECT count(*) FROM upload_batches") == 1
    # The endpoint's worker prepared the records (SAM signature, pseudonym) for the loop.
    assert api.db.scalar("SELECT count(*) FROM upload_bodies WHERE prepared IS NOT NULL") == 1
    report = validation_loop_of(api.app).run_once()
    assert report.posted == 1
    assert api.db.scalar("SELECT count(*) FROM taps WHERE sam_verified") == 1


def test_the_same_batch_twice_is_a_duplicate(api: Api) -> None:
    body = _batch(api.gate)
    first = api.client.post("/api/v1/uploads", content=body, headers=api.headers)
    second = api.client.post("/api/v1/uploads", content=body, headers=api.headers)
    assert _ack(first).status is AckStatus.ACCEPTED
    assert second.status_code == 200 and _ack(second).status is AckStatus.DUPLICATE
    assert api.db.scalar("SELECT count(*) FROM upload_batches") == 1


def test_two_copies_at_once_store_one(api: Api) -> None:
    body = _batch(api.gate)
    barrier = threading.Barrier(4)
    answers: list[Ack] = []

    def send() -> None:
        client = TestClient(api.app)
        barrier.wait()
        answers.append(_ack(client.post("/api/v1/uploads", content=body, headers=api.headers)))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status.value for a in answers)
    assert statuses == ["accepted", "duplicate", "duplicate", "duplicate"]
    assert api.db.scalar("SELECT count(*) FROM upload_batches") == 1


def test_two_copies_at_once_through_the_service(vl_db: VLDatabase) -> None:
    gate = TerminalSim("GATE-1")
    keys = KeyRing(gate)
    body = _batch(gate)
    barrier = threading.Barrier(6)
    outcomes: list[AckStatus] = []

    def send() -> None:
        barrier.wait()
        outcomes.append(vl_db.upload(keys, gate, body).ack.status)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(s.value for s in outcomes) == ["accepted"] + ["duplicate"] * 5
    assert vl_db.scalar("SELECT count(*) FROM upload_batches") == 1


def test_other_bytes_under_a_stored_batch_id_are_rejected(api: Api) -> None:
    first = _batch(api.gate, counter=ctr(1))
    api.gate.seq -= 1  # same sequence number, other content: same batch id
    other = _batch(api.gate, counter=ctr(2))
    assert _ack(api.client.post("/api/v1/uploads", content=first, headers=api.headers)).status is (
        AckStatus.ACCEPTED
    )
    response = api.client.post("/api/v1/uploads", content=other, headers=api.headers)
    assert response.status_code == 409
    assert _ack(response).status is AckStatus.REJECTED
    assert api.db.scalar("SELECT count(*) FROM anomalies WHERE kind = 'batch_conflict'") == 1


@pytest.mark.parametrize(
    ("name", "mangle", "status"),
    [
        ("malformed JSON", lambda b: b[:-7], 400),
        ("not JSON at all", lambda b: b"\xff\xfe garbage", 400),
        ("not canonical", lambda b: b.replace(b'{"batch":{', b'{"batch": {', 1), 400),
        ("float amount", lambda b: b.replace(b'"amount":-180', b'"amount":-1.8e2', 1), 400),
        ("tampered content", lambda b: b.replace(b'"amount":-180', b'"amount":-181', 1), 403),
        ("empty body", lambda b: b"", 400),
        # Python refuses to convert an integer of more than 4300 digits (a ValueError).
        ("5000-digit integer", lambda b: b.replace(b"-180", b"-" + b"9" * 5000, 1), 400),
    ],
)
def test_bad_batches_get_a_4xx_ack_with_a_reason(
    api: Api, name: str, mangle: object, status: int
) -> None:
    body = mangle(_batch(api.gate))  # type: ignore[operator]
    response = api.client.post("/api/v1/uploads", content=body, headers=api.headers)
    assert response.status_code == status, (name, response.text)
    ack = _ack(response)
    assert ack.status is AckStatus.REJECTED and ack.detail
    assert api.db.scalar("SELECT count(*) FROM upload_batches") == 0


def _resigned(gate: TerminalSim, body: bytes, mutate: Callable[[dict[str, Any]], None]) -> bytes:
    """``body`` with its batch object changed by ``mutate``, validly signed again."""
    envelope = json.loads(body)
    mutate(envelope["batch"])
    signature = gate.private_key.sign(canonical_json(envelope["batch"]))
    envelope["signature"]["value"] = signature.hex().upper()
    return canonical_json(envelope)


def _wrong_type(batch: dict[str, Any]) -> None:
    batch["records"][0]["card_tx_counter"] = "1"


def _unknown_field(batch: dict[str, Any]) -> None:
    batch["records"][0]["holder_profile"] = "job_seeker"  # privacy: refused as unknown


def _bad_first_seq(batch: dict[str, Any]) -> None:
    batch["first_seq"] = 1


@pytest.mark.parametrize("mutate", [_wrong_type, _unknown_field, _bad_first_seq])
def test_signed_but_malformed_batches_are_400(
    api: Api, mutate: Callable[[dict[str, Any]], None]
) -> None:
    body = _resigned(api.gate, _batch(api.gate), mutate)
    response = api.client.post("/api/v1/uploads", content=body, headers=api.headers)
    assert response.status_code == 400, response.text
    assert _ack(response).status is AckStatus.REJECTED
    assert api.db.scalar("SELECT count(*) FROM upload_batches") == 0


def test_an_oversized_batch_is_refused(api: Api) -> None:
    records = [api.gate.record(CARD, ctr(n)) for n in range(1, 52)]  # over max_batch_records
    response = api.client.post(
        "/api/v1/uploads", content=api.gate.batch(records), headers=api.headers
    )
    assert response.status_code == 413
    huge = b"{" + b" " * (70 * 1024) + b"}"
    response = api.client.post("/api/v1/uploads", content=huge, headers=api.headers)
    assert response.status_code == 413
    assert "64" in response.text or "65536" in response.text


def test_a_batch_of_another_terminal_is_forbidden(api: Api) -> None:
    impostor = TerminalSim("GATE-OTHER")
    impostor.private_key = api.gate.private_key  # even signed with a valid key
    response = api.client.post("/api/v1/uploads", content=_batch(impostor), headers=api.headers)
    assert response.status_code == 403
    assert "GATE-OTHER" in (_ack(response).detail or "")


def test_an_unknown_signing_key_is_forbidden(api: Api) -> None:
    stranger = TerminalSim(api.gate.terminal_id)  # same id, unregistered key
    response = api.client.post("/api/v1/uploads", content=_batch(stranger), headers=api.headers)
    assert response.status_code == 403


def test_no_credentials_is_401(api: Api) -> None:
    headers = {k: v for k, v in api.headers.items() if k != "Authorization"}
    response = api.client.post("/api/v1/uploads", content=_batch(api.gate), headers=headers)
    assert response.status_code == 401


def test_wrong_terminal_header_is_refused(api: Api) -> None:
    headers = dict(api.headers, **{"X-Regioncard-Terminal": "GATE-OTHER"})
    response = api.client.post("/api/v1/uploads", content=_batch(api.gate), headers=headers)
    assert 400 <= response.status_code < 500


def test_the_background_loop_processes_accepted_batches(api: Api) -> None:
    api.app.state.validation_auto = True
    response = api.client.post("/api/v1/uploads", content=_batch(api.gate), headers=api.headers)
    assert _ack(response).status is AckStatus.ACCEPTED
    validation_loop_of(api.app).run_once()  # waits for the background run (same lock)
    assert api.db.scalar("SELECT count(*) FROM taps") == 1
