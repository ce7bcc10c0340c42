"""Gate validator flows on the emulated card and SAM (in-process readers)."""

from __future__ import annotations

from pathlib import Path

from enginekit import make_card
from gatekit import SHELTER, GateRig, build_gate

from card_schema.uploads.records import TransactionState
from terminal.fares.model import GateKind
from terminal.gate import DISPLAY_PRESENT_AGAIN, TapOutcome


def test_carnet_tap_writes_event_decreases_counter_and_journals(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.COMMITTED
    assert result.accepted
    assert result.display == "Bon voyage — 4 voyages restants"
    assert gate_rig.counter(1) == 4
    record = gate_rig.journal.get(result.journal_seq or 0)
    assert record.state is TransactionState.COMMITTED
    assert record.sam_signature and len(record.sam_signature) == 15
    assert record.intent.written_event == gate_rig.events()[0]
    # PLUM select + 4 reads, open, decrease, append, close ratifying at once (P1 80, the
    # reference's default): 9 card APDUs, no other application
    assert result.card_apdus == 9
    # Get Challenge, Select Diversifier, Digest Init, Digest Update Multiple (4 elements),
    # Digest Close, PSO Compute Signature, Digest Authenticate
    assert result.sam_apdus == 7
    assert "Bon voyage" in gate_rig.display.getvalue()


def test_anti_passback_refuses_without_writing(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    gate_rig.tap()
    gate_rig.clock.advance(minutes=2)
    before = gate_rig.rig.image().to_json()
    second = gate_rig.tap()
    assert second.outcome is TapOutcome.REFUSED
    assert second.display.startswith("Déjà validé")
    assert gate_rig.rig.image().to_json() == before


def test_monthly_pass_writes_only_the_event(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(monthly_pass=True))
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.COMMITTED
    assert result.display.startswith("Bon voyage")
    assert result.card_apdus == 8
    assert result.sam_apdus == 7


def test_school_transport_from_cursus_is_free(gate_rig: GateRig) -> None:
    # A carnet trip is paid: for a holder with a student profile the gate reads Cursus first
    # (free before paid); see test_gate_lazy_reads.py for the other cases.
    gate_rig.rig.personalise(make_card(carnet_trips=5, school_transport_zones=(1,), profiles=(1,)))
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.COMMITTED
    assert result.display.startswith("Transport scolaire gratuit")
    assert gate_rig.counter(1) == 5


def test_no_contract_is_refused_in_french(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card())
    result = gate_rig.tap()
    assert not result.accepted
    # The wallet now pays trips at the gate: an empty one is the most useful refusal.
    assert result.display.startswith("Solde insuffisant — solde 0,00 €")
    assert gate_rig.journal.records() == []


def test_close_answer_lost_then_next_tap_recovers_without_charging(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    # card APDUs: PLUM select + 4 reads, open, decrease, append, close (9th)
    gate_rig.rig.reader.tear_after(9)
    first = gate_rig.tap()
    assert first.outcome is TapOutcome.UNCERTAIN
    assert first.display == DISPLAY_PRESENT_AGAIN
    assert gate_rig.counter(1) == 4  # the card committed
    gate_rig.clock.advance(seconds=5)
    second = gate_rig.tap()
    assert second.outcome is TapOutcome.RECOVERED
    assert second.accepted
    assert gate_rig.counter(1) == 4  # not charged twice
    assert [r.state for r in second.resolved] == [TransactionState.COMMITTED]
    gate_rig.clock.advance(seconds=5)
    third = gate_rig.tap()
    assert third.display.startswith("Déjà validé")


def test_card_pulled_before_close_asks_to_present_again(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    before = gate_rig.rig.image().to_json()
    gate_rig.rig.reader.tear_after(8, reached=False)  # the append never reaches the card
    result = gate_rig.tap()
    assert result.display == DISPLAY_PRESENT_AGAIN
    assert not result.accepted
    assert gate_rig.rig.image().to_json() == before
    again = gate_rig.tap()
    assert again.outcome is TapOutcome.COMMITTED
    assert gate_rig.counter(1) == 4


def test_bike_shelter_opens_for_a_shelter_contract_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    door = build_gate(tmp_path / "a", kind=GateKind.BIKE_SHELTER, place=SHELTER)
    door.rig.personalise(make_card(annual_pass=True))
    before = door.rig.image().to_json()
    opened = door.tap()
    assert opened.accepted and opened.outcome is TapOutcome.NO_WRITE
    assert opened.display.startswith("Abri vélo : accès autorisé")
    assert door.rig.image().to_json() == before
    other = build_gate(tmp_path / "b", kind=GateKind.BIKE_SHELTER, place=SHELTER)
    other.rig.personalise(make_card(carnet_trips=3))
    refused = other.tap()
    assert not refused.accepted
    assert refused.display.startswith("Abri vélo : accès refusé")


def test_inspector_reads_and_explains_never_writes(tmp_path: Path) -> None:
    inspector = build_gate(tmp_path, kind=GateKind.INSPECTOR)
    inspector.rig.personalise(make_card(monthly_pass=True, sv_balance=500))
    before = inspector.rig.image().to_json()
    result = inspector.tap()
    assert result.outcome is TapOutcome.INSPECTED
    assert result.report is not None
    assert result.display == "Titre valide"
    assert "Open Secure Session" not in inspector.gate.counter.card_commands
    assert inspector.gate.counter.sam == 0
    assert inspector.rig.image().to_json() == before
    assert inspector.journal.records() == []
