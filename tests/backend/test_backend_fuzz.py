"""Property-based API fuzzing (schemathesis) over every operation, on SQLite and PostgreSQL.

Every operation of ``/openapi.json`` gets generated requests, valid and invalid (schemathesis'
positive and negative modes), as a supervisor and as a terminal (a gate and a desk station). No
answer may be a 5xx, and every answer must match the response documented for its status code
(``backend.openapi`` documents each error with its real body). Signed upload bodies are fuzzed
separately: schemathesis cannot sign, so records of random content are signed with the gate's
registered key, and signed bodies are mutated byte by byte.

Bounded: a fixed number of examples per operation and caller (no wall-clock limit, no Hypothesis
database), so the run is the same size every time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from backend.uploads.router import validation_loop_of
from card_schema.uploads.batch import Ack
from card_schema.uploads.records import PurseMovement, PurseUnit, TransactionKind
from tests.backend.conftest import TERMINALS, Auth
from tests.backend.validation_fixtures import TerminalSim

EXAMPLES_PER_OPERATION = 6
CALLERS = ("supervisor", "gate", "desk")
CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def _operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_the_fuzzer_sees_every_operation(app: FastAPI) -> None:
    operations = _operations(app)
    documented = sum(len(item) for item in app.openapi()["paths"].values())
    assert len(operations) == documented >= 60


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_a_5xx_or_off_schema(
    app: FastAPI, auth: Auth, mode: GenerationMode
) -> None:
    headers = {who: auth(who) for who in CALLERS}
    failures: list[str] = []
    fuzzed = 0
    for operation in _operations(app):
        if operation.path == "/api/v1/auth/token":
            continue  # fuzzed below with its throttle reset: guesses would lock the callers out

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            for who in CALLERS:
                response = case.call(headers=headers[who])
                try:
                    case.validate_response(response, checks=CHECKS)
                except Exception as exc:  # collect, so one run names every broken operation
                    failures.append(f"{who} {case.method} {case.formatted_path}: {exc}"[:600])
                    return

        try:
            run()
        except Unsatisfiable:
            # Negative mode: nothing of this operation can be made invalid (no parameters).
            assert mode is GenerationMode.NEGATIVE, operation.path
            continue
        fuzzed += 1
    assert not failures, "\n".join(failures[:20])
    assert fuzzed >= (60 if mode is GenerationMode.POSITIVE else 30), fuzzed


def test_login_fuzzing_never_breaks(app: FastAPI) -> None:
    login = next(op for op in _operations(app) if op.path == "/api/v1/auth/token")

    @FUZZ_SETTINGS
    @given(case=login.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def _movement(data: st.DataObject) -> PurseMovement:
    purse = data.draw(st.sampled_from(["wallet.sv", "cursus.canteen_aid", "plum.counter.1", "x.y"]))
    unit = PurseUnit.COUNT if purse.startswith("plum.counter") else PurseUnit.EUROCENT
    before = data.draw(st.integers(0, 2**20))
    amount = data.draw(st.integers(-(2**20), 2**20))
    return PurseMovement(purse, unit, amount, before, before + amount)


def _gate(auth: Auth) -> TerminalSim:
    terminal_id, station, _ = TERMINALS["gate"]
    return TerminalSim(
        terminal_id,
        sam_serial=bytes.fromhex("5A000000"),
        station_id=station,
        private_key=auth.terminal_keys["gate"],
        seq=10_000_000,
    )


def test_signed_uploads_of_random_records_never_break(
    app: FastAPI, client: TestClient, auth: Auth
) -> None:
    gate = _gate(auth)
    headers = {**auth("gate"), "Content-Type": "application/json"}
    now = datetime.now(UTC)

    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        records = []
        for _ in range(data.draw(st.integers(1, 4))):
            records.append(
                gate.record(
                    data.draw(st.binary(min_size=8, max_size=8)),
                    data.draw(st.integers(0, 0xFFFFFF)),
                    kind=data.draw(st.sampled_from(list(TransactionKind))),
                    application=data.draw(st.sampled_from(["plum", "cursus", "wallet", "rights"])),
                    movements=[_movement(data) for _ in range(data.draw(st.integers(0, 3)))],
                    at=now - timedelta(minutes=data.draw(st.integers(0, 600))),
                    committed=data.draw(st.booleans()),
                    forge=data.draw(st.booleans()),
                )
            )
        answer = client.post("/api/v1/uploads", content=gate.batch(records), headers=headers)
        assert answer.status_code < 500, answer.text
        Ack.decode(answer.content)
        validation_loop_of(app).run_once()  # the loop takes whatever was accepted

    run()


def test_mutated_signed_uploads_are_refused_cleanly(client: TestClient, auth: Auth) -> None:
    gate = _gate(auth)
    gate.seq = 20_000_000
    headers = {**auth("gate"), "Content-Type": "application/json"}
    body = gate.batch([gate.sv_debit(bytes.fromhex("0000000012345678"), 1, 1000)])

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(
        position=st.integers(0, len(body) - 1),
        replacement=st.binary(min_size=0, max_size=6),
        cut=st.booleans(),
    )
    def run(position: int, replacement: bytes, cut: bool) -> None:
        mutated = body[:position] + replacement + (b"" if cut else body[position + 1 :])
        answer = client.post("/api/v1/uploads", content=mutated, headers=headers)
        assert answer.status_code < 500, answer.text
        Ack.decode(answer.content)

    run()
