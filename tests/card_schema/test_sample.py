"""The sample card: every application present, every record read back as it was written."""

from __future__ import annotations

import pytest

from card_schema.layout import CARD_LAYOUT
from card_schema.records import decode_record
from card_schema.sample import SAMPLE_RECORDS, decode_card, sample_card
from regioncard.cli import main


def test_sample_covers_every_application_and_file() -> None:
    image = sample_card()
    for app in CARD_LAYOUT.applications:
        for f in app.files:
            records = image[app.name][f.name]
            assert len(records) == f.record_count
            assert all(len(r) == f.record_size for r in records)


def test_sample_decodes_to_what_was_written() -> None:
    decoded = decode_card(sample_card())
    for app_name, files in SAMPLE_RECORDS.items():
        for file_name, records in files.items():
            assert [values for _n, values in decoded[app_name][file_name]] == records


def test_carnet_is_read_with_its_compact_layout() -> None:
    image = sample_card()
    raw = image["plum"]["contracts"][1]
    assert decode_record("plum.contract", raw, tariff=0x0202)["ContractData"]["ContractSold"] == 10
    (_, carnet) = decode_card(image)["plum"]["contracts"][1]
    assert carnet["_layout"] == "20"


def test_demo_prints_all_four_applications(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--sample-card"]) == 0
    out = capsys.readouterr().out
    for label in ("PLUM (transport)", "Ma région numérique", "Cursus", "Mes droits pour l'emploi"):
        assert label in out
    assert "0801234G" in out and "mobility_aid" in out and "bus urbain" in out
