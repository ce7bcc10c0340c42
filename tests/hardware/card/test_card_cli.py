"""``regioncard card new/show/keys new`` (hardware/cli.py), and personalisation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from card_schema.crypto import KeyRole, card_key
from card_schema.errors import SchemaError
from hardware.card.image import CardImage, CardImageStore
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.keystore import KeyFileStore
from regioncard.cli import main


def test_card_new_with_keys_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys, image = tmp_path / "keys.json", tmp_path / "card.json"
    assert main(["card", "keys", "new", str(keys)]) == 0
    assert (
        main(["card", "new", str(image), "--serial", "0011223344556677", "--keys", str(keys)]) == 0
    )
    assert stat.S_IMODE(image.stat().st_mode) == 0o600
    card = CardImageStore(image).load()
    assert card.serial == bytes.fromhex("0011223344556677")
    master = KeyFileStore.load(keys).master_keys()["plum.debit.v1"]
    assert card.applications["plum"].keys[KeyRole.DEBIT].key == card_key(
        master, card.serial, b"1TIC.ICA"
    )
    capsys.readouterr()
    assert main(["card", "show", str(image)]) == 0
    shown = capsys.readouterr().out
    assert "0011223344556677" in shown and "debit v1" in shown
    assert card.applications["plum"].keys[KeyRole.DEBIT].key.hex() not in shown.lower()


def test_card_new_refuses_to_overwrite_and_bad_serials(tmp_path: Path) -> None:
    image = tmp_path / "card.json"
    assert main(["card", "new", str(image)]) == 0
    assert CardImageStore(image).load().applications["plum"].keys == {}
    assert main(["card", "new", str(image)]) == 2
    assert main(["card", "new", str(image), "--force", "--serial", "zz"]) == 2
    assert main(["card", "new", str(image), "--force", "--serial", "00"]) == 2
    assert main(["card", "keys", "new", str(tmp_path / "k.json")]) == 0
    assert main(["card", "keys", "new", str(tmp_path / "k.json")]) == 2


def test_personalisation_refuses_what_does_not_fit() -> None:
    image: CardImage = new_card(bytes(8), None)
    with pytest.raises(SchemaError):
        write_records(image, "plum", "environment", [b"a", b"b"])
    with pytest.raises(SchemaError):
        write_records(image, "plum", "environment", [b"x" * 30])
    with pytest.raises(SchemaError):
        set_sv_balance(image, "plum", 100)
    with pytest.raises(SchemaError):
        set_sv_balance(image, "wallet", -1)


def test_card_new_sample_holds_the_sample_card_the_demo_decodes(tmp_path: Path) -> None:
    from card_schema.records import decode_record
    from card_schema.sample import SAMPLE_RECORDS

    image = tmp_path / "card.json"
    assert main(["card", "new", str(image), "--sample"]) == 0
    card = CardImageStore(image).load()
    student = decode_record("cursus.student", card.applications["cursus"].records["student"][0])
    assert student["school_uai"] == SAMPLE_RECORDS["cursus"]["student"][0]["school_uai"]
    contracts = card.applications["plum"].records["contracts"]
    assert sum(1 for r in contracts if any(r)) == len(SAMPLE_RECORDS["plum"]["contracts"])
    assert card.applications["wallet"].sv_balance == 2290
