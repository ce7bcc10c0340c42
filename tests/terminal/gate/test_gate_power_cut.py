"""Power cut after every card APDU of a carnet validation, then the next tap.

Whatever the APDU, the card image is byte for byte the image before or the image after the
session, the journal agrees with it, and after the next tap exactly one trip was charged and the
passenger was let through exactly once per charge.
"""

from __future__ import annotations

import pytest
from enginekit import make_card
from gatekit import GateRig

from card_schema.uploads.records import TransactionState
from hardware.card.image import PowerCut
from terminal.gate import TapOutcome

CARD_APDUS = 10  # PLUM select + 4 reads, open, decrease, append, close, ratify


def _cut_at(index: int) -> object:
    def hook(i: int) -> None:
        if i == index:
            raise PowerCut(f"power cut after APDU {i}")

    return hook


@pytest.mark.parametrize("index", range(CARD_APDUS))
def test_power_cut_after_each_apdu(gate_rig: GateRig, index: int) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    before = gate_rig.rig.image()
    first = gate_rig.tap(_cut_at(index))
    after_cut = gate_rig.rig.image()
    unchanged = after_cut.applications == before.applications
    committed = (
        gate_rig.counter(1) == 4
        and gate_rig.events()[0] != before.applications["plum"].records["events"][0]
    )
    assert unchanged or committed, "the card is neither before nor after the session"
    states = [r.state for r in gate_rig.journal.records()]
    if unchanged:
        assert TransactionState.COMMITTED not in states
        assert not first.accepted
    else:
        assert TransactionState.ABORTED not in states
    gate_rig.clock.advance(seconds=20)
    second = gate_rig.tap()
    assert gate_rig.counter(1) == 4, "exactly one trip charged"
    assert sum(1 for e in gate_rig.events() if any(e)) == 1, "exactly one event written"
    records = gate_rig.journal.records()
    assert [r.state for r in records].count(TransactionState.COMMITTED) == 1
    assert not [r for r in records if r.state is TransactionState.UNCERTAIN]
    # the passenger went through once: at the cut tap, or at the next one
    assert [first.accepted, second.accepted].count(True) == 1
    if second.accepted:
        assert second.outcome in (TapOutcome.COMMITTED, TapOutcome.RECOVERED)
