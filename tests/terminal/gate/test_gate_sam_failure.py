"""The gate's SAM reader fails at every SAM APDU of a carnet validation, then the next tap.

For each SAM APDU of the tap, the SAM leaves its reader during that exchange: either it executed
the command and the answer was lost, or the command never reached it. Then:

- the card is byte for byte the image before or the image after the session;
- the journal agrees with it: COMMITTED only if on the card, never ABORTED if the card committed
  (a close the SAM could not check is UNCERTAIN);
- the display says the gate is out of service (presenting the card again would not help) unless
  the passenger was let through;
- with the SAM back in its reader, the next tap ends with exactly one trip charged, one event,
  one COMMITTED record, nothing UNCERTAIN, and the passenger let through exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from enginekit import SAM_SERIAL, demo_keys, make_card
from gatekit import GateRig, assert_before_or_after, assert_charged_once, build_gate

from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore
from terminal.gate import TapOutcome
from terminal.gate.validator import DISPLAY_OUT_OF_SERVICE

# A carnet tap is 7 SAM APDUs today (checked below): select diversifier, challenge, digest
# init, digest update, digest close, traceable signature, digest authenticate. The parameter
# list covers every index; the count test fails if it changes, so that the list stays complete.
SAM_APDUS = 7


def test_the_carnet_tap_sam_apdu_count_is_what_the_failure_tests_cover(tmp_path: Path) -> None:
    rig = build_gate(tmp_path)
    rig.rig.personalise(make_card(carnet_trips=5))
    result = rig.tap()
    rig.close()
    assert result.outcome is TapOutcome.COMMITTED
    assert result.sam_apdus == SAM_APDUS


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "command-lost"])
@pytest.mark.parametrize("index", range(1, SAM_APDUS + 1))
def test_sam_fails_at_each_apdu_then_next_tap(gate_rig: GateRig, index: int, reached: bool) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    before = gate_rig.rig.image()
    gate_rig.rig.sam_reader.tear_after(index, reached=reached)
    first = gate_rig.tap()
    assert_before_or_after(gate_rig, before, first)
    if not first.accepted:
        assert first.display == DISPLAY_OUT_OF_SERVICE == "Hors service"
    gate_rig.rig.sam_reader.insert(gate_rig.rig.sam)  # the SAM is back
    gate_rig.clock.advance(seconds=20)
    second = gate_rig.tap()
    assert_charged_once(gate_rig, first, second)


def test_no_sam_in_its_reader_is_out_of_service(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    before = gate_rig.rig.image()
    gate_rig.rig.sam_reader.remove()
    result = gate_rig.tap()
    assert not result.accepted and result.display == "Hors service"
    assert gate_rig.rig.image().applications == before.applications
    assert gate_rig.journal.records() == []


def test_a_sam_lacking_a_key_says_so_instead_of_asking_to_present_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a SAM answering 6A88 (no such master key) made the gate ask every passenger to
    « Veuillez représenter votre carte », and logged nothing above INFO/WARNING to tell why.
    A Calypso SAM's Digest Init answers 6A83 (work key not found, Keyple's table) since issue
    11."""
    keys = demo_keys().master_keys()
    del keys["plum.debit.v1"]  # the SAM was loaded without the PLUM debit key
    sam = EmulatedSAM(KeyFileStore(keys), SAM_SERIAL, counter_file=tmp_path / "sam.json")
    rig = build_gate(tmp_path, sam=sam)
    rig.rig.personalise(make_card(carnet_trips=5))
    before = rig.rig.image()
    with caplog.at_level(logging.WARNING, logger="terminal.gate.validator"):
        result = rig.tap()
    rig.close()
    assert not result.accepted
    assert result.display == "Hors service : SAM en défaut (6A83)"
    assert "Veuillez représenter" not in rig.display.getvalue()
    assert "Hors service : SAM en défaut (6A83)" in rig.display.getvalue()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SAM cannot serve" in r.getMessage() and "6A83" in r.getMessage() for r in warnings)
    assert rig.rig.image().applications == before.applications
