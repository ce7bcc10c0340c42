"""Pay-as-you-go from the wallet SV at the gate: a PLUM session, then a wallet session.

The PLUM session writes the ride (the event names the pay-as-you-go product), the wallet session
debits its fare dated and located like the event; each session is its own journal record. A cut
between or inside them never charges twice and never lets the passenger through unpaid.
"""

from __future__ import annotations

import pytest
from enginekit import SAM_SERIAL, make_card
from gatekit import GateRig

from card_schema.uploads.records import TransactionKind, TransactionState
from hardware.card.image import PowerCut
from terminal.engine.svlog import WalletDebit
from terminal.gate import TapOutcome

FARE = 180  # TICKET_UNITAIRE, standard rider
BALANCE = 500


def _sv(gate_rig: GateRig) -> int:
    return gate_rig.rig.image().applications["wallet"].sv_balance


def _debits(gate_rig: GateRig) -> list[WalletDebit]:
    raw = gate_rig.rig.image().applications["wallet"].records["sv_debit_log"]
    return [d for d in map(WalletDebit.from_record, raw) if d is not None]


def _events(gate_rig: GateRig) -> list[bytes]:
    return [e for e in gate_rig.events() if any(e)]


def test_pay_as_you_go_tap_debits_the_wallet_and_journals_two_sessions(
    gate_rig: GateRig,
) -> None:
    gate_rig.rig.personalise(make_card(sv_balance=BALANCE))
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.COMMITTED, result
    assert result.accepted
    assert result.display == "Bon voyage — solde 3,20 €"
    assert _sv(gate_rig) == BALANCE - FARE
    assert len(_events(gate_rig)) == 1
    plum, wallet = gate_rig.journal.records()
    assert (plum.intent.kind, plum.intent.application) == (TransactionKind.VALIDATION, "plum")
    assert plum.intent.product_code == 1 and plum.intent.movements == ()
    assert plum.intent.written_event == _events(gate_rig)[0]
    assert (wallet.intent.kind, wallet.intent.application) == (TransactionKind.SV_DEBIT, "wallet")
    (movement,) = wallet.intent.movements
    assert (movement.purse, movement.amount) == ("wallet.sv", -FARE)
    assert (movement.balance_before, movement.balance_after) == (BALANCE, BALANCE - FARE)
    assert {plum.state, wallet.state} == {TransactionState.COMMITTED}
    (debit,) = _debits(gate_rig)
    assert (
        wallet.intent.written_event
        == gate_rig.rig.image().applications["wallet"].records["sv_debit_log"][0]
    )
    # the card's Calypso debit log names the gate by its SAM's serial
    assert debit.sam_id == int.from_bytes(SAM_SERIAL, "big") and debit.amount == FARE
    # a transfer on another line of the journey is free; the same gate again is "Déjà validé"
    gate_rig.clock.advance(minutes=2)
    again = gate_rig.tap()
    assert again.display.startswith("Déjà validé")
    assert _sv(gate_rig) == BALANCE - FARE


def test_insufficient_balance_is_refused_without_writing(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(sv_balance=100))
    before = gate_rig.rig.image().to_json()
    result = gate_rig.tap()
    assert not result.accepted
    assert result.display == "Solde insuffisant — solde 1,00 €, trajet 1,80 €"
    assert gate_rig.rig.image().to_json() == before
    assert gate_rig.journal.records() == []


def _cut_at(index: int) -> object:
    def hook(i: int) -> None:
        if i == index:
            raise PowerCut(f"power cut after APDU {i}")

    return hook


# PLUM select + 4 reads, open (0-5); Cursus select + read, employment select + read, wallet
# select + SV Get (6-11); PLUM select, open, append, close (12-15); wallet select + debit log,
# open, SV Get, SV Debit, close (16-21); both closes ratify at once (P1 80): no ratification.
PAYG_APDUS = 22


def test_payg_apdu_count(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(sv_balance=BALANCE))
    assert gate_rig.tap().card_apdus == PAYG_APDUS


@pytest.mark.parametrize("index", range(PAYG_APDUS))
def test_power_cut_after_each_apdu_then_next_tap(gate_rig: GateRig, index: int) -> None:
    gate_rig.rig.personalise(make_card(sv_balance=BALANCE))
    first = gate_rig.tap(_cut_at(index))
    gate_rig.clock.advance(seconds=20)
    second = gate_rig.tap()
    gate_rig.clock.advance(seconds=20)
    third = gate_rig.tap()
    # exactly one ride, paid exactly once, the passenger through exactly once
    assert len(_events(gate_rig)) == 1
    assert _sv(gate_rig) == BALANCE - FARE
    assert len(_debits(gate_rig)) == 1
    assert [first.accepted, second.accepted, third.accepted].count(True) == 1, (
        first,
        second,
        third,
    )
    assert third.display.startswith("Déjà validé") or not first.accepted
    records = gate_rig.journal.records()
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert sorted(r.intent.application for r in committed) == ["plum", "wallet"]
    assert not [r for r in records if r.state in (TransactionState.UNCERTAIN,)]
    # the wallet record that committed is the debit the card holds
    (wallet,) = [r for r in committed if r.intent.application == "wallet"]
    raw = gate_rig.rig.image().applications["wallet"].records["sv_debit_log"][0]
    assert wallet.intent.written_event == raw


def test_unpaid_ride_gives_no_transfer_elsewhere(gate_rig: GateRig) -> None:
    """The wallet session failed and the passenger went to another line: the unpaid ride is
    no journey to transfer from; this tap pays its own ride (once)."""
    gate_rig.rig.personalise(make_card(sv_balance=BALANCE))
    first = gate_rig.tap(_cut_at(17))  # after the wallet's select: PLUM committed, no debit
    assert not first.accepted
    assert len(_events(gate_rig)) == 1 and _sv(gate_rig) == BALANCE
    gate_rig.gate.place = gate_rig.gate.place.__class__(
        station_id=202, zone=1, network_id=250001, mode=gate_rig.gate.place.mode, line_id=None
    )
    gate_rig.clock.advance(minutes=10)
    other = gate_rig.tap()
    assert other.accepted and other.display.startswith("Bon voyage")
    assert _sv(gate_rig) == BALANCE - FARE
    (debit,) = _debits(gate_rig)
    assert debit.sam_id == int.from_bytes(SAM_SERIAL, "big") and debit.amount == FARE


INS_SV_CHECK = 0x58


def test_a_card_sv_signature_refused_by_the_sam_is_uncertain_then_recovered_once(
    gate_rig: GateRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SAM does not verify the card's SV Debit signature (SV Check answers ``6988``). As in
    Calypso, that signature comes with the card's Close Secure Session answer and is checked
    after it: the card has committed the debit, so the wallet record is UNCERTAIN (never
    ABORTED), the passenger is asked to tap again, and the next tap finds the debit in the
    card's SV log: recovered, let through, charged once."""
    gate_rig.rig.personalise(make_card(sv_balance=BALANCE))
    reader = gate_rig.rig.sam_reader
    honest = reader._transmit_raw

    def refuse_sv_check(apdu: bytes) -> bytes:
        response = honest(apdu)
        return response[:-2] + b"\x69\x88" if apdu[1] == INS_SV_CHECK else response

    with monkeypatch.context() as patch:
        patch.setattr(reader, "_transmit_raw", refuse_sv_check)
        refused = gate_rig.tap()
    assert not refused.accepted and refused.outcome is TapOutcome.UNCERTAIN, refused
    assert refused.display == "Veuillez représenter votre carte"
    assert _sv(gate_rig) == BALANCE - FARE and len(_debits(gate_rig)) == 1
    assert [(r.intent.application, r.state) for r in gate_rig.journal.records()] == [
        ("plum", TransactionState.COMMITTED),
        ("wallet", TransactionState.UNCERTAIN),
    ]
    gate_rig.clock.advance(seconds=20)
    paid = gate_rig.tap()
    assert paid.accepted and paid.outcome is TapOutcome.RECOVERED, paid
    assert _sv(gate_rig) == BALANCE - FARE and len(_debits(gate_rig)) == 1
    assert [r.state for r in gate_rig.journal.records()] == [TransactionState.COMMITTED] * 2
    assert len(_events(gate_rig)) == 1, "the ride was written once"
