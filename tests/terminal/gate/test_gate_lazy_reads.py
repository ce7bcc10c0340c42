"""Lazy reads of the other applications, the mobility aid as an entitlement, the deny-list.

The gate decides with PLUM first and reads Cursus, Mes droits pour l'emploi and the wallet only
when PLUM gives no right for this tap, or gives a paid trip to a holder whose profile may carry
a free entitlement (free before paid).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from enginekit import MONDAY, SERIAL, make_card
from gatekit import BACKEND_KEY, GateRig

from card_schema.records import decode_record
from card_schema.uploads.records import TransactionState
from terminal.fares.errors import PushedTableError
from terminal.fares.signed import sign_envelope
from terminal.gate import TapOutcome

SELECT = "Select Application"


def _selects(gate_rig: GateRig) -> int:
    return gate_rig.gate.counter.card_commands.count(SELECT)


def test_pass_reads_plum_only(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(monthly_pass=True, school_transport_zones=(1,)))
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.COMMITTED
    assert _selects(gate_rig) == 1
    assert (result.card_apdus, result.sam_apdus) == (8, 7)


def test_carnet_without_entitlement_profile_reads_plum_only(gate_rig: GateRig) -> None:
    """Documented limit: Cursus is not read for a carnet holder without a student profile, so
    a pupil whose PLUM environment lacks the profile pays a carnet trip on a school day."""
    gate_rig.rig.personalise(make_card(carnet_trips=5, school_transport_zones=(1,)))
    result = gate_rig.tap()
    assert result.display == "Bon voyage — 4 voyages restants"
    assert _selects(gate_rig) == 1
    assert (result.card_apdus, result.sam_apdus) == (9, 7)


def test_student_carnet_holder_gets_school_transport_first(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5, school_transport_zones=(1,), profiles=(1,)))
    result = gate_rig.tap()
    assert result.display.startswith("Transport scolaire gratuit")
    assert gate_rig.counter(1) == 5
    # PLUM 5 + open, Cursus 2, PLUM again + open, append, close (ratifying at once). SAM: the
    # abandoned first opening costs only its Get Challenge (Select Diversifier comes with
    # Digest Init), then the 7 of a session with a traceable signature.
    assert (result.card_apdus, result.sam_apdus) == (12, 8)
    assert gate_rig.gate.counter.card_commands.count("Open Secure Session") == 2


def test_no_plum_right_reads_cursus_and_stops_there(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(school_transport_zones=(1,), sv_balance=500))
    result = gate_rig.tap()
    assert result.display.startswith("Transport scolaire gratuit")
    assert _selects(gate_rig) == 3  # PLUM, Cursus, PLUM again: no employment, no wallet
    assert gate_rig.rig.image().applications["wallet"].sv_balance == 500


def test_expired_pass_falls_back_on_the_wallet(gate_rig: GateRig) -> None:
    gate_rig.clock.advance(days=30)  # the September pass has expired
    gate_rig.rig.personalise(make_card(monthly_pass=True, sv_balance=500))
    result = gate_rig.tap()
    assert result.accepted and result.display == "Bon voyage — solde 3,20 €"


def test_mobility_aid_is_an_entitlement_with_the_product_code_only(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(mobility_trips=3, sv_balance=500))
    rights_before = gate_rig.rig.image().applications["employment"].records["rights"]
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.COMMITTED
    assert result.display.startswith("Bon voyage")  # neutral: the display is public
    image = gate_rig.rig.image()
    assert image.applications["employment"].records["rights"] == rights_before  # no debit
    assert image.applications["wallet"].sv_balance == 500
    event = decode_record("plum.event", gate_rig.events()[0])
    assert event["EventDisplayData"] == 91  # AIDE_MOBILITE_EMPLOI, nothing else of the right
    assert "EventContractPointer" not in event
    (record,) = gate_rig.journal.records()
    assert record.intent.application == "plum" and record.intent.product_code == 91
    assert record.intent.movements == ()
    intent = json.dumps(record.intent.to_json())
    for word in ("employment", "mission_locale", "mobility", "job"):
        assert word not in intent
    # still free on the next trip, the next day
    gate_rig.clock.advance(days=1)
    assert gate_rig.tap().display.startswith("Bon voyage")


def test_deny_listed_card_is_refused_and_nothing_is_written(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5, sv_balance=500))
    envelope = sign_envelope(
        BACKEND_KEY, "deny_list", 2, gate_rig.clock(), {"serials": [SERIAL.hex().upper()]}
    )
    gate_rig.gate.tables.offer_deny_list(envelope, gate_rig.clock())
    before = gate_rig.rig.image().to_json()
    result = gate_rig.tap()
    assert result.outcome is TapOutcome.REFUSED
    assert result.display == "Carte bloquée"
    assert gate_rig.rig.image().to_json() == before
    assert gate_rig.journal.records() == []
    assert _selects(gate_rig) == 1
    assert "Carte bloquée" in gate_rig.display.getvalue()


def test_deny_list_signed_by_another_key_changes_nothing(gate_rig: GateRig) -> None:
    gate_rig.rig.personalise(make_card(carnet_trips=5))
    forged = sign_envelope(
        Ed25519PrivateKey.generate(), "deny_list", 2, MONDAY, {"serials": [SERIAL.hex()]}
    )
    with pytest.raises(PushedTableError):
        gate_rig.gate.tables.offer_deny_list(forged, gate_rig.clock())
    result = gate_rig.tap()
    assert result.accepted
    assert [r.state for r in gate_rig.journal.records()] == [TransactionState.COMMITTED]
