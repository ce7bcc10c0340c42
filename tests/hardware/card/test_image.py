"""Card image: JSON round trip, validation against the layout, atomic commit steps."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cardkit import SERIAL, personalised_image

from card_schema.crypto import KeyRole
from hardware.card.image import (
    CardImage,
    CardImageError,
    CardImageStore,
    CommitStep,
    PowerCut,
)


def test_json_round_trip() -> None:
    image = personalised_image()
    again = CardImage.from_json(json.loads(json.dumps(image.to_json())))
    assert again == image
    assert again.applications["plum"].keys[KeyRole.DEBIT].kvc == 1


def test_blank_card_follows_the_layout() -> None:
    image = CardImage.blank(SERIAL)
    image.validate()
    assert image.applications["plum"].records["events"] == [bytes(29)] * 3
    assert image.transaction_counter == 0xFFFFFF and image.ratified
    with pytest.raises(CardImageError):
        CardImage.blank(b"\x01")


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("serial"),
        lambda d: d.update(format="other"),
        lambda d: d["applications"].pop("wallet"),
        lambda d: d["applications"]["plum"]["records"]["events"].pop(),
        lambda d: d["applications"]["plum"]["records"]["events"].__setitem__(0, "00"),
        lambda d: d["applications"]["wallet"]["sv"].update(balance=-1),
        lambda d: d.update(transaction_counter=1 << 24),
        lambda d: d["applications"]["plum"]["keys"]["debit"].update(key="00"),
    ],
)
def test_invalid_images_are_refused(damage: object) -> None:
    doc = personalised_image().to_json()
    damage(doc)  # type: ignore[operator]
    with pytest.raises(CardImageError):
        CardImage.from_json(doc)


def test_store_commit_and_load(tmp_path: Path) -> None:
    store = CardImageStore(tmp_path / "card.json")
    with pytest.raises(CardImageError):
        store.load()
    image = personalised_image()
    store.commit(image)
    assert store.load() == image
    assert stat.S_IMODE((tmp_path / "card.json").stat().st_mode) == 0o600
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(CardImageError):
        store.load()


@pytest.mark.parametrize("step", list(CommitStep))
def test_power_cut_at_each_commit_step_leaves_old_or_new(tmp_path: Path, step: CommitStep) -> None:
    path = tmp_path / "card.json"
    old = personalised_image()
    CardImageStore(path).commit(old)
    new = old.copy()
    new.transaction_counter -= 1

    def cut(at: CommitStep) -> None:
        if at is step:
            raise PowerCut(f"cut at {at.value}")

    with pytest.raises(PowerCut):
        CardImageStore(path, commit_hook=cut).commit(new)
    reloaded = CardImageStore(path).load()
    renamed = list(CommitStep).index(step) > list(CommitStep).index(CommitStep.REPLACE)
    assert reloaded == (new if renamed else old)
    assert not (tmp_path / "card.json.tmp").exists()  # load cleans a torn temporary file
