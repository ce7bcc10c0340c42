"""``regioncard schema ...`` through the real CLI entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from card_schema.records import encode_record
from regioncard.cli import main

EVENT = {"EventDateStamp": "2026-11-27", "EventTimeStamp": "07:42", "EventCode": 17}


def test_decode_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    raw = encode_record("plum.event", EVENT)
    assert main(["schema", "decode", "plum.event", raw.hex()]) == 0
    assert json.loads(capsys.readouterr().out) == EVENT


def test_encode_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EVENT))
    assert main(["schema", "encode", "plum.event", str(path)]) == 0
    assert capsys.readouterr().out.strip() == encode_record("plum.event", EVENT).hex()


def test_encode_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO(json.dumps({"counter_1": 3} | {f"counter_{i}": 0 for i in range(2, 10)})),
    )
    assert main(["schema", "encode", "plum.counters", "-"]) == 0
    assert capsys.readouterr().out.strip() == "000003" + "00" * 26


def test_contract_with_tariff(capsys: pytest.CaptureFixture[str]) -> None:
    values = {"_layout": "20", "ContractStatus": 1}
    raw = encode_record("plum.contract", values, tariff=0x0200)
    assert main(["schema", "decode", "plum.contract", raw.hex(), "--tariff", "0x0200"]) == 0
    assert json.loads(capsys.readouterr().out) == values


def test_schema_error_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "decode", "plum.event", "00"]) == 2
    assert "erreur : a plum.event record is 29 bytes, got 1" in capsys.readouterr().err


def test_bad_hex_is_a_schema_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "decode", "plum.event", "zz"]) == 2
    assert "not hexadecimal" in capsys.readouterr().err


def test_list_and_describe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "list"]) == 0
    out = capsys.readouterr().out
    assert "plum.contract" in out and "cursus.student" in out
    assert main(["schema", "describe", "plum.environment", "--holder-profile-bits", "2"]) == 0
    out = capsys.readouterr().out
    assert "HolderProfiles" in out and "  2  repeat counter" in out
