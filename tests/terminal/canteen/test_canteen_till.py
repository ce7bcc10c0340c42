"""The till on in-process readers: what it writes, journals, signs and shows."""

from __future__ import annotations

from pathlib import Path

from canteen_builders import DINNER_TIME, LUNCH_TIME, OTHER_SCHOOL, POS
from canteen_kit import (
    TERMINAL_ID,
    Clock,
    TillRig,
    card_state,
    demo_keys,
    new_card_file,
    pupil_image,
)

from card_schema.traceability import sam_trace_key, verify_traceable_signature
from card_schema.uploads.records import TransactionState
from card_schema.uploads.signing import intent_sam_input
from hardware.card.image import CardImageStore
from hardware.sam.keystore import TRACE_KEY
from terminal.canteen.reasons import MealReason


def _rig(tmp_path: Path, **pupil: object) -> TillRig:
    card = new_card_file(tmp_path / "card.json", pupil_image(**pupil))  # type: ignore[arg-type]
    rig = TillRig(tmp_path, card)
    rig.insert()
    return rig


def test_split_meal_two_sessions_journaled_and_signed(tmp_path: Path) -> None:
    rig = _rig(tmp_path, canteen_aid=320, wallet=1_000)
    result = rig.till.serve()
    assert result.reason is MealReason.SERVED
    assert result.receipt == (
        "Repas du 27/11 — aide cantine 3,20 € — porte-monnaie 0,60 € — reste aide 0,00 € "
        "— solde porte-monnaie 9,40 €"
    )
    assert rig.screen.last[0] == "Bon appétit"
    assert any(line.startswith("Menu du déjeuner — vendredi 27/11") for line in rig.screen.last)
    image = CardImageStore(rig.card_path).load()
    cursus, wallet = rig.journal.records()
    # What the journal says the card wrote is byte for byte what the card holds.
    assert cursus.intent.written_event == image.applications["cursus"].records["canteen_log"][0]
    assert wallet.intent.written_event == image.applications["wallet"].records["sv_debit_log"][0]
    assert cursus.intent.card_tx_counter != wallet.intent.card_tx_counter
    assert [m.purse for m in cursus.intent.movements] == ["cursus.canteen_aid"]
    assert [m.purse for m in wallet.intent.movements] == ["wallet.sv"]
    trace_key = sam_trace_key(demo_keys().master_keys()[TRACE_KEY.label], bytes.fromhex("5A000001"))
    for record in (cursus, wallet):
        assert record.state is TransactionState.COMMITTED
        assert record.sam_signature is not None
        signed = intent_sam_input(TERMINAL_ID, record.seq, record.intent)
        verify_traceable_signature(trace_key, record.sam_signature, signed)


def test_aid_only_meal_is_one_session(tmp_path: Path) -> None:
    rig = _rig(tmp_path, canteen_aid=10_000, wallet=0)
    result = rig.till.serve()
    assert result.reason is MealReason.SERVED
    assert len(result.sessions) == 1
    assert card_state(rig.card_path).canteen_aid == 10_000 - 380


def test_ring_fenced_aid_is_never_spent_on_a_meal(tmp_path: Path) -> None:
    rig = _rig(tmp_path, canteen_aid=0, wallet=100, books=90_000, sport=90_000)
    result = rig.till.serve()
    assert result.reason is MealReason.INSUFFICIENT_BALANCE
    state = card_state(rig.card_path)
    assert (state.books, state.sport, state.wallet, state.meals) == (90_000, 90_000, 100, [])
    assert rig.journal.records() == []
    assert [r.reason for r in rig.refusals.read()] == [MealReason.INSUFFICIENT_BALANCE]


def test_one_meal_per_service_but_dinner_is_another_service(tmp_path: Path) -> None:
    rig = _rig(tmp_path, canteen_aid=10_000, wallet=0, boarding="boarder")
    assert rig.till.serve().reason is MealReason.SERVED
    again = rig.till.serve()
    assert again.reason is MealReason.ALREADY_SERVED
    assert "Repas enregistré à 12:05 (caisse 7)" in again.lines
    rig.clock.now = DINNER_TIME
    assert rig.till.serve().reason is MealReason.SERVED
    state = card_state(rig.card_path)
    assert state.canteen_aid == 10_000 - 2 * 380
    assert [m.service.value for m in state.meals] == ["dinner", "lunch"]


def test_refusals_write_nothing(tmp_path: Path) -> None:
    rig = _rig(tmp_path, canteen_aid=10_000, wallet=1_000, school=OTHER_SCHOOL)
    before = CardImageStore(rig.card_path).load().to_json()
    result = rig.till.serve()
    assert result.reason is MealReason.OTHER_SCHOOL
    assert rig.screen.last[0] == "Élève d'un autre établissement"
    assert CardImageStore(rig.card_path).load().to_json() == before
    assert rig.journal.records() == []


def test_out_of_service_hours(tmp_path: Path) -> None:
    card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=10_000, wallet=0))
    rig = TillRig(tmp_path, card, clock=Clock(LUNCH_TIME.replace(hour=15)))
    rig.insert()
    result = rig.till.serve()
    assert result.reason is MealReason.OUT_OF_SERVICE
    assert "Pas de service de restauration en cours" in result.lines


def test_no_card_in_the_field_asks_to_tap_again(tmp_path: Path) -> None:
    rig = _rig(tmp_path, canteen_aid=10_000, wallet=0)
    rig.card_reader.disconnect()
    rig.card_reader.remove()
    assert rig.till.serve().reason is MealReason.TAP_AGAIN
    assert rig.till.pos_id == POS
