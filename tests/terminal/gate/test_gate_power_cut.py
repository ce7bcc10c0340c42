"""Power cut after every card APDU of a carnet validation, then the next tap.

Whatever the APDU, the card image is byte for byte the image before or the image after the
session, the journal agrees with it, and after the next tap exactly one trip was charged and the
passenger was let through exactly once per charge.
"""

from __future__ import annotations

import pytest
from enginekit import make_card
from gatekit import GateRig, assert_before_or_after, assert_charged_once

from hardware.card.image import PowerCut

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
    assert_before_or_after(gate_rig, before, first)
    gate_rig.clock.advance(seconds=20)
    second = gate_rig.tap()
    assert_charged_once(gate_rig, first, second)
