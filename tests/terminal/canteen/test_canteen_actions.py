"""Cursus aid granted by a funder, written at the pupil's next meal, in the meal's own session.

Emulated card and SAM behind in-process readers with power-cut injection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from canteen_kit import TillRig, card_state, cut_after, new_card_file, pupil_image
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.records import decode_record
from hardware.card.image import CardImageStore
from terminal.actions import ACTION_LIST_KIND, ActionLists, ActionOutbox
from terminal.actions.writer import ActionWriter
from terminal.canteen.reasons import MealReason
from terminal.fares.signed import sign_envelope

KEY = Ed25519PrivateKey.generate()
SERIAL_HEX = "0000000012345678"
SERVED = {MealReason.SERVED, MealReason.RECOVERED}


def credit(action_id: int, purpose: str, amount: int) -> dict[str, Any]:
    return {
        "action_id": action_id,
        "card_serial": SERIAL_HEX,
        "application": "cursus",
        "kind": "aid_credit",
        "params": {"purse": f"cursus.{purpose}_aid", "amount": amount, "funder": "region"},
    }


def with_actions(rig: TillRig, actions: list[dict[str, Any]], version: int = 1) -> ActionWriter:
    lists = ActionLists(KEY.public_key())
    now = datetime.now().astimezone()
    lists.offer(sign_envelope(KEY, ACTION_LIST_KIND, version, now, {"actions": actions}), now)
    writer = ActionWriter(lists, ActionOutbox(rig.tmp_path / "actions.db"))
    rig.till.actions = writer
    return writer


def last_action(path: Path) -> int:
    raw = CardImageStore(path).load().applications["cursus"].records["aid_counters"][0]
    return int(decode_record("cursus.aid_counters", raw)["last_action"])


def outbox(writer: ActionWriter) -> dict[int, str]:
    assert writer.outbox is not None
    return writer.outbox.states()


def test_aid_granted_pays_the_next_meal_and_is_written_once(tmp_path: Path) -> None:
    card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=0, wallet=0, books=0))
    (tmp_path / "a").mkdir()
    rig = TillRig(tmp_path / "a", card)
    writer = with_actions(rig, [credit(41, "canteen", 5_000), credit(42, "books", 2_000)])
    rig.insert()
    first = rig.till.serve()
    assert first.reason is MealReason.SERVED, first
    state = card_state(card)
    assert state.canteen_aid == 5_000 - 380 and state.books == 2_000  # ring-fenced
    assert last_action(card) == 42
    assert first.card_apdus == plain_meal_apdus(tmp_path)  # the credit rides in the aid update
    assert outbox(writer) == {41: "committed", 42: "committed"}
    # Another till with the same list, the next day: the card says 42 is written.
    (tmp_path / "b").mkdir()
    other = TillRig(tmp_path / "b", card)
    other.clock.now = rig.clock.now + timedelta(days=1)
    other_writer = with_actions(other, [credit(41, "canteen", 5_000), credit(42, "books", 2_000)])
    other.insert()
    assert other.till.serve().reason is MealReason.SERVED
    state = card_state(card)
    assert state.canteen_aid == 5_000 - 2 * 380 and state.books == 2_000
    assert outbox(other_writer) == {}
    rig.close()
    other.close()


def plain_meal_apdus(tmp_path: Path) -> int:
    """Card APDUs of the same meal paid from aid already on the card, without any action."""
    where = tmp_path / "plain"
    where.mkdir()
    card = new_card_file(where / "card.json", pupil_image(canteen_aid=5_000, wallet=0))
    rig = TillRig(where, card)
    rig.insert()
    result = rig.till.serve()
    rig.close()
    assert result.reason is MealReason.SERVED
    return result.card_apdus


# Card APDUs of a meal with one aid credit (the same as without it: the credit rides in the aid
# counter update); test_credit_meal_apdu_count checks it, so the cut test covers every APDU.
CREDIT_MEAL_APDUS = 13


def test_credit_meal_apdu_count(tmp_path: Path) -> None:
    card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=0, wallet=0))
    rig = TillRig(tmp_path, card)
    with_actions(rig, [credit(7, "canteen", 1_000)])
    rig.insert()
    assert rig.till.serve().card_apdus == CREDIT_MEAL_APDUS
    rig.close()


@pytest.mark.parametrize("index", range(CREDIT_MEAL_APDUS))
def test_power_cut_after_each_apdu_of_a_meal_with_a_credit(tmp_path: Path, index: int) -> None:
    card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=0, wallet=0))
    rig = TillRig(tmp_path, card)
    writer = with_actions(rig, [credit(7, "canteen", 1_000)])
    rig.insert(fault_hook=cut_after(index))
    first = rig.till.serve()
    assert first.card_apdus == index + 1
    state = card_state(card)
    credited = last_action(card) == 7
    assert (state.canteen_aid, len(state.meals)) in ((0, 0), (1_000 - 380, 1))
    assert credited == (len(state.meals) == 1), "the credit and the meal commit together"
    results = [first]
    for minute in (1, 2):
        rig.clock.now = rig.clock.now + timedelta(minutes=minute)
        rig.insert()
        results.append(rig.till.serve())
    state = card_state(card)
    assert state.canteen_aid == 1_000 - 380, "credited once, one meal taken"
    assert len(state.meals) == 1 and last_action(card) == 7
    assert [r.reason in SERVED for r in results].count(True) == 1
    assert outbox(writer) == {7: "committed"}
    rig.clock.now = rig.clock.now + timedelta(days=1)  # the next lunch: no second credit
    rig.insert()
    assert rig.till.serve().reason is MealReason.SERVED
    assert card_state(card).canteen_aid == 1_000 - 2 * 380
    rig.close()
