"""``regioncard demo`` end to end on a small day: real pcscd, backend over HTTP, report files.

The demo runs in a child process (``python -m regioncard demo``), the same code path as
``make demo``: it starts its own pcscd, which must not meet the test session's ``pcsc_stack``
(one private pcscd per process).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hardware.pcsc_stack import PCSCD, VPCD_DRIVER

pytestmark = pytest.mark.integration
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOLDERS = 8


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (Path(PCSCD).exists() and VPCD_DRIVER.exists() and shutil.which("softhsm2-util")):
        pytest.skip("pcscd, vsmartcard-vpcd or softhsm2 missing")
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PCSCLITE_CSOCK_NAME", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "regioncard",
            "demo",
            "--holders",
            str(HOLDERS),
            "--quick",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Le grand livre est équilibré au centime près." in done.stdout
    (out / "stdout.txt").write_text(done.stdout, encoding="utf-8")
    (out / "stderr.txt").write_text(done.stderr, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def summary(demo_out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((demo_out / "summary.json").read_text(encoding="utf-8"))
    return data


def test_every_requested_card_is_issued(summary: dict[str, Any]) -> None:
    assert summary["cards_issued"]["total"] == HOLDERS
    assert set(summary["cards_issued"]["by_kind"]) == {
        "eleve",
        "etudiant",
        "demandeur_emploi",
        "senior",
        "actif",
        "anonyme",
    }


def test_every_card_went_through_a_desk_job(summary: dict[str, Any]) -> None:
    """The agent created one desk job per card and the desk station wrote every one of them."""
    desk = summary["desk_jobs"]
    assert desk["created"] == desk["done"] == HOLDERS
    assert desk["failed"] == 0
    assert summary["cards_issued"]["through_desk_jobs"] == summary["cards_issued"]["total"]
    # At least a PLUM and a wallet personalisation per card, one wrapped key loaded per step.
    assert desk["steps_written"] >= 2 * HOLDERS
    assert desk["wrapped_keys_loaded"] == desk["steps_written"]
    assert "DeskStation" in summary["paths"]["issuance"]


def test_blocked_cards_are_refused_after_the_push(summary: dict[str, Any]) -> None:
    blocked = summary["blocked_cards"]
    assert blocked["blocked"] == 3
    assert blocked["deny_list_version"] >= 3
    assert blocked["refused_at_gate_after_push"] == 3
    assert blocked["all_refused"] is True
    assert summary["taps"]["refused_by_reason"].get("card_blocked", 0) >= 3


def test_the_day_has_taps_meals_and_school_transport(summary: dict[str, Any]) -> None:
    assert summary["taps"]["accepted_by_reason"].get("school_transport", 0) > 0
    assert summary["taps"]["accepted_by_reason"].get("bike_shelter_open", 0) > 0
    assert set(summary["meals"]["by_school"]) == {"0801234G", "0590001A"}
    assert summary["meals"]["aid_cents"] > 0
    # Pay-as-you-go rides go through: SV Debit in Calypso frames carries each terminal's own
    # SAM serial (a SAM swap the engine did not see would make every SV MAC fail: "aborted").
    assert "aborted" not in summary["taps"]["refused_by_reason"]


def test_offline_terminal_catches_up(summary: dict[str, Any]) -> None:
    offline = summary["offline_terminal"]
    assert offline["taps_while_offline"] > 0
    assert offline["failed_attempts"]
    assert offline["caught_up_records"] > 0
    assert offline["all_uploaded"] is True and offline["not_uploaded_at_end"] == 0
    assert summary["uploads"]["not_uploaded"] == 0
    assert summary["uploads"]["pending_batches_after_loop"] == 0


def test_ledger_balance_comes_from_the_backend(summary: dict[str, Any]) -> None:
    ledger = summary["ledger"]
    assert ledger["balanced"] is True
    assert ledger["message"] == "Le grand livre est équilibré au centime près."
    assert ledger["entries"] > 0 and ledger["total_cents"] == 0
    assert summary["amounts_by_funder"]


def test_report_files(demo_out: Path, summary: dict[str, Any]) -> None:
    page = (demo_out / "index.html").read_text(encoding="utf-8")
    plots = summary["report"]["plots"]
    assert len(plots) == 4
    for name in plots.values():
        assert (demo_out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"src='{name}'" in page
    assert "Carte régionale Hauts-de-France — carte exemple" in page
    assert not (demo_out.parent / "var").exists()


def test_desk_records_reach_the_ledger(summary: dict[str, Any]) -> None:
    """The desk journals its loads and uploads them: reloads against ``sales:<desk>``, aid
    credits against their funder, the card purses mirroring both (credits, not only debits)."""
    desk = summary["uploads"]["by_terminal"]["DESK-LILLE-1"]
    assert desk["records"] > 0 and desk["not_uploaded"] == 0
    posted = summary["desk_ledger"]
    assert posted["entries"] > 0
    accounts = posted["by_account"]
    sales = {a: n for a, n in accounts.items() if a.startswith("sales:")}
    funders = {a: n for a, n in accounts.items() if a.startswith("funder:region:")}
    assert sales == {"sales:DESK-LILLE-1": -accounts["card:wallet.sv"]}
    assert accounts["card:wallet.sv"] > 0 and funders
    assert sum(funders.values()) == -sum(
        n for a, n in accounts.items() if a.startswith("card:cursus.")
    )
    assert sum(accounts.values()) == 0
    assert "chain_break" not in summary["anomalies"]["by_kind"]


def test_progress_agrees_with_the_summary_and_warnings_are_french(
    demo_out: Path, summary: dict[str, Any]
) -> None:
    stdout = (demo_out / "stdout.txt").read_text(encoding="utf-8")
    match = re.search(r"dont (\d+) passages aux valideurs", stdout)
    assert match is not None, stdout
    assert int(match.group(1)) == summary["taps"]["total"]
    assert f"Passages : {summary['taps']['total']} " in stdout
    # No raw log line (English, timestamped) in the middle of the progress lines.
    stderr = (demo_out / "stderr.txt").read_text(encoding="utf-8")
    assert " WARNING " not in stdout + stderr, stdout + stderr
    if summary["offline_terminal"].get("failed_attempts"):
        assert "non remis (serveur injoignable)" in stdout


def test_accounts_and_anomalies_have_french_labels_with_their_code(
    demo_out: Path, summary: dict[str, Any]
) -> None:
    html = (demo_out / "index.html").read_text(encoding="utf-8")
    for account in summary["amounts_by_funder"]:
        label = summary["accounts_fr"][account]
        assert label != account
        assert f"{label} <small class='code'>{account}</small>" in html
    for anomaly in summary["anomalies"]["by_kind_fr"]:
        assert anomaly["label"] != anomaly["kind"]
        assert (
            anomaly["open"] + anomaly["resolved"]
            == summary["anomalies"]["by_kind"][anomaly["kind"]]
        )
        assert f"<small class='code'>{anomaly['kind']}</small>" in html


def test_totals_that_do_not_add_up_are_explained(summary: dict[str, Any]) -> None:
    lines = summary["explanations"]
    taps = summary["taps"]
    billed = sum(v["taps"] for v in summary["operators"].values())
    assert lines[0].startswith(
        f"{taps['total']} passages aux valideurs contre {billed} facturés aux exploitants"
    )
    if "region:plum" in summary["amounts_by_funder"]:
        assert any("(region:plum)" in line for line in lines)
    at_gate = taps["refused_by_reason"].get("card_blocked", 0)
    if at_gate != summary["blocked_cards"]["refused_at_gate_after_push"]:
        assert any(f"{at_gate} refus « Carte bloquée »" in line for line in lines)
