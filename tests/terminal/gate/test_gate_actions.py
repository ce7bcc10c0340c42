"""Loads written at the next tap: exactly once, torn writes, tampered and rolled-back lists.

Emulated card and SAM behind in-process readers with power-cut injection (the pcscd run of two
gates is in test_gate_actions_pcsc.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from actionkit import (
    CARNET,
    MONTHLY,
    action,
    action_gate,
    contract_serials,
    outbox,
    signed_list,
)
from enginekit import make_card
from gatekit import GateRig

from card_schema.uploads.records import TransactionState
from hardware.card.image import PowerCut
from terminal.fares.errors import RollbackRefused, SignatureRefused
from terminal.gate import TapOutcome

# select + 4 reads, open, contract, list, counters (with the trip taken), append, close (ratified
# at once, P1 80, as Calypso closes without a separate ratification command)
CARNET_ACTION_APDUS = 11


def test_season_pass_bought_online_lets_the_passenger_through(tmp_path: Path) -> None:
    rig, lists = action_gate(tmp_path / "a")
    rig.rig.personalise(make_card())  # no contract: refused without the load
    lists.offer(signed_list([action(7, MONTHLY)], 1, rig.clock()), rig.clock())
    result = rig.tap()
    assert result.outcome is TapOutcome.COMMITTED, result.display
    assert contract_serials(rig.rig.image()) == [7]
    assert outbox(rig).states() == {7: "committed"}
    rig.clock.advance(minutes=90)
    again = rig.tap()  # the list still names action 7 (not confirmed yet): not written again
    assert again.outcome is TapOutcome.COMMITTED
    assert contract_serials(rig.rig.image()) == [7]
    rig.close()


def test_exactly_once_across_two_gates_in_the_same_second(tmp_path: Path) -> None:
    a, lists_a = action_gate(tmp_path / "a", "GATE-A")
    b, lists_b = action_gate(tmp_path / "b", "GATE-B")
    b.rig.card, b.rig.card_path = a.rig.card, a.rig.card_path  # one card, two gates
    b.clock = a.clock
    b.gate.clock = a.clock
    a.rig.personalise(make_card(carnet_trips=2))
    envelope = signed_list([action(9, CARNET)], 5, a.clock())
    lists_a.offer(envelope, a.clock())
    lists_b.offer(envelope, a.clock())
    first = a.tap()
    second = b.tap()  # same second, other gate: anti-passback, no session
    assert first.outcome is TapOutcome.COMMITTED
    assert not second.accepted
    a.clock.advance(minutes=90)
    third = b.tap()  # a new trip through gate B: a session, and action 9 still in B's list
    assert third.outcome is TapOutcome.COMMITTED
    # Gate B found action 9 on the card: it wrote nothing of it and confirms nothing.
    assert contract_serials(a.rig.image()) == [1002, 9]
    assert outbox(a).states() == {9: "committed"}
    assert outbox(b).states() == {}
    a.close()
    b.close()


def _cut_at(index: int) -> object:
    def hook(i: int) -> None:
        if i == index:
            raise PowerCut(f"power cut after APDU {i}")

    return hook


@pytest.mark.parametrize("index", range(CARNET_ACTION_APDUS))
def test_power_cut_after_each_apdu_of_a_tap_with_an_action(tmp_path: Path, index: int) -> None:
    rig, lists = action_gate(tmp_path)
    rig.rig.personalise(make_card())
    lists.offer(signed_list([action(9, CARNET)], 1, rig.clock()), rig.clock())
    before = rig.rig.image()
    first = rig.tap(_cut_at(index))
    assert first.card_apdus == index + 1  # the cut came after APDU ``index`` of this tap
    after_first = rig.rig.image()
    written = contract_serials(after_first) == [9]
    assert written or after_first.applications == before.applications
    rig.clock.advance(seconds=20)
    second = rig.tap()
    _assert_loaded_and_charged_once(rig, first.accepted, second.accepted)
    rig.clock.advance(minutes=90)
    third = rig.tap()  # a new trip: the load is not written a second time
    assert third.outcome is TapOutcome.COMMITTED
    assert third.card_apdus == CARNET_ACTION_APDUS - 2  # a plain carnet tap
    assert contract_serials(rig.rig.image()) == [9]
    assert rig.counter(1) == 8
    rig.close()


def _assert_loaded_and_charged_once(rig: GateRig, first: bool, second: bool) -> None:
    image = rig.rig.image()
    assert contract_serials(image) == [9], "the carnet written exactly once"
    assert rig.counter(1) == 9, "ten trips loaded, exactly one taken"
    assert sum(1 for e in rig.events() if any(e)) == 1, "exactly one event"
    records = rig.journal.records()
    assert [r.state for r in records].count(TransactionState.COMMITTED) == 1
    assert not [r for r in records if r.state is TransactionState.UNCERTAIN]
    assert [first, second].count(True) == 1
    assert outbox(rig).states() == {9: "committed"}


def test_tampered_or_rolled_back_list_is_refused_and_the_previous_stays(tmp_path: Path) -> None:
    rig, lists = action_gate(tmp_path)
    now = rig.clock()
    lists.offer(signed_list([action(7, MONTHLY)], 10, now), now)
    good = signed_list([action(8, MONTHLY)], 11, now)
    tampered = replace(good, payload={"actions": [action(8, {**MONTHLY, "duration_days": 3650})]})
    with pytest.raises(SignatureRefused):
        lists.offer(tampered, now)
    older = signed_list([action(6, MONTHLY)], 9, now)
    with pytest.raises(RollbackRefused):
        lists.offer(older, now)
    with pytest.raises(RollbackRefused):  # the same list again (replay)
        lists.offer(signed_list([action(7, MONTHLY)], 10, now), now)
    assert lists.version == 10
    assert [a.action_id for a in lists.pending_for("0000000012345678", "plum")] == [7]
    rig.close()


def test_list_kept_on_disk_and_a_tampered_file_set_aside(tmp_path: Path) -> None:
    rig, lists = action_gate(tmp_path)
    now = rig.clock()
    lists.offer(signed_list([action(7, MONTHLY)], 10, now), now)
    rig.close()
    again, reloaded = action_gate(tmp_path)
    assert reloaded.version == 10
    assert [a.action_id for a in reloaded.pending_for("0000000012345678", "plum")] == [7]
    again.close()
    path = tmp_path / "tables" / "action_list.json"
    document = json.loads(path.read_text())
    document["envelope"]["payload"]["actions"][0]["params"]["duration_days"] = 3650
    path.write_text(json.dumps(document))
    third, refused = action_gate(tmp_path)
    assert refused.version == 0 and refused.pending_for("0000000012345678", "plum") == ()
    assert (tmp_path / "tables" / "action_list.json.refused").exists()
    third.close()
