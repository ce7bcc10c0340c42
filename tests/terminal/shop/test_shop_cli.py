"""``regioncard shop``: the daily report from the till's journal, and bad input in French."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shop_kit import TERMINAL_ID, ShopRig, customer_image, new_card_file

from regioncard.cli import main
from terminal.shop.till import ShopReason


def test_report_of_the_day_from_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = ShopRig(tmp_path, new_card_file(tmp_path / "card.json", customer_image()))
    rig.insert()
    assert rig.till.sale("books", 2_350).reason == ShopReason.PAID
    rig.insert()
    assert rig.till.refund("books", 1_000).reason == ShopReason.REFUNDED
    rig.close()
    journal = str(tmp_path / "shop.journal")
    args = ["shop", "--purposes", "books", "--journal", journal, "--terminal-id", TERMINAL_ID]
    assert main([*args, "--json", "report", "2026-12-05"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["purposes"]["books"] == {
        "sales": 1,
        "sales_amount": 2_350,
        "refunds": 1,
        "refunds_amount": 1_000,
        "net": 1_350,
    }
    assert main([*args, "report", "2026-12-05"]) == 0
    text = capsys.readouterr().out
    assert "Total dû par le financeur : 13,50 €" in text
    assert main([*args, "--json", "report", "2026-12-06"]) == 0
    assert json.loads(capsys.readouterr().out)["net"] == 0


@pytest.mark.parametrize(
    ("argv", "french"),
    [
        (["--purposes", "books,food", "sale", "books", "2"], "usages inconnus"),
        (["--purposes", "books", "sale", "books", "deux"], "montant invalide"),
        (["--purposes", "books", "sale", "books"], "attend un usage et un montant"),
        (["--purposes", "books", "sale", "canteen", "2"], "usage inconnu"),
        (["--purposes", "books", "report", "5/12/2026"], "date invalide"),
    ],
)
def test_bad_input_answers_in_french_without_traceback(
    argv: list[str], french: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shop", *argv]) == 2
    err = capsys.readouterr().err
    assert french in err and "Traceback" not in err
