"""The manager's daily report: meals by service, amounts by funder, pending payments, refusals."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from canteen_builders import LUNCH_TIME, OTHER_SCHOOL, SCHOOL
from canteen_kit import TillRig, card_state, cut_after, new_card_file, pupil_image

from terminal.canteen.model import MealService
from terminal.canteen.reasons import MealReason
from terminal.canteen.refusals import Refusal, RefusalLog
from terminal.canteen.report import daily_report

DAY = date(2026, 11, 27)


def _tap(rig: TillRig, path: Path, **kwargs: object) -> None:
    rig.card_path = path
    rig.insert(**kwargs)  # type: ignore[arg-type]
    rig.till.serve()


def test_report_from_a_lunch_service(tmp_path: Path) -> None:
    cards = [
        new_card_file(
            tmp_path / "a.json",
            pupil_image(canteen_aid=10_000, wallet=0, serial=b"\x00" * 7 + b"\x0a"),
        ),
        new_card_file(
            tmp_path / "b.json",
            pupil_image(canteen_aid=320, wallet=1_000, serial=b"\x00" * 7 + b"\x0b"),
        ),
        new_card_file(
            tmp_path / "c.json", pupil_image(canteen_aid=0, wallet=0, serial=b"\x00" * 7 + b"\x0c")
        ),
        new_card_file(
            tmp_path / "d.json",
            pupil_image(canteen_aid=320, wallet=1_000, serial=b"\x00" * 7 + b"\x0d"),
        ),
    ]
    rig = TillRig(tmp_path, cards[0])
    _tap(rig, cards[0])
    _tap(rig, cards[0])  # already served
    _tap(rig, cards[1])
    _tap(rig, cards[2])  # insufficient
    # Card d: pulled right after its wallet session's SV Debit, never comes back.
    _tap(rig, cards[3], fault_hook=cut_after(15))
    assert card_state(cards[3]).meals and card_state(cards[3]).wallet == 1_000
    refusals = rig.refusals.read(DAY)
    report = daily_report(rig.journal.records(), refusals, SCHOOL, DAY)

    assert report.meals == 3
    assert report.meals_by_service == {MealService.LUNCH: 3}
    obj = report.to_json()
    assert obj["amounts_by_funder"]["region"] == {
        "label": "Région (aide cantine)",
        "amount": 380 + 320 + 320,
    }
    assert obj["amounts_by_funder"]["wallet"]["amount"] == 60
    assert obj["total"] == 380 + 320 + 320 + 60
    assert [p["amount"] for p in obj["wallet_payments_pending"]] == [60]
    assert obj["refusals_by_reason"]["already_served"] == {"label": "Repas déjà pris", "count": 1}
    assert obj["refusals_by_reason"]["insufficient_balance"]["count"] == 1
    assert json.loads(report.to_json_text()) == obj

    text = report.to_text()
    assert "Rapport de restauration du 27/11/2026 — établissement 0801234G" in text
    assert "Repas servis : 3" in text
    assert "  déjeuner : 3" in text
    assert "  Région (aide cantine) : 10,20 €" in text
    assert "  Porte-monnaie (Ma région numérique) : 0,60 €" in text
    assert "Paiements porte-monnaie en attente : 1 (0,60 €)" in text
    assert "  Repas déjà pris : 1" in text

    # Other days and other schools are not counted.
    assert daily_report(rig.journal.records(), refusals, SCHOOL, DAY + timedelta(days=1)).meals == 0
    assert daily_report(rig.journal.records(), refusals, OTHER_SCHOOL, DAY).meals == 0
    rig.close()


def test_refusal_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    log = RefusalLog(tmp_path / "r.jsonl")
    at = LUNCH_TIME.replace(tzinfo=None)
    log.append(Refusal(at, SCHOOL, MealService.LUNCH, MealReason.OTHER_SCHOOL))
    with log.path.open("a") as stream:
        stream.write('{"at": "2026-11-27T12:')
    assert [r.reason for r in log.read(DAY)] == [MealReason.OTHER_SCHOOL]
    assert log.read(date(2026, 11, 28)) == []
    assert isinstance(log.read()[0].at, datetime)


def test_cli_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from canteen_kit import TERMINAL_ID

    from regioncard.cli import main

    card = new_card_file(tmp_path / "a.json", pupil_image(canteen_aid=10_000, wallet=0))
    rig = TillRig(tmp_path, card)
    _tap(rig, card)
    rig.close()
    argv = ["canteen", "--school", SCHOOL, "--journal", str(rig.journal_path)]
    argv += ["--terminal-id", TERMINAL_ID, "--report", "2026-11-27"]
    assert main(argv) == 0
    assert "Repas servis : 1" in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meals"] == 1
