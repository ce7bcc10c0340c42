"""Power cut after every card APDU of a canteen debit (aid + wallet: two sessions), then retry.

For each APDU index of a meal paid 3,20 € from the canteen aid and 0,60 € from the wallet, the
emulated card loses power right after executing that APDU (its answer is lost). Then:

- the card is before-or-after for each session (aid debit and meal log together; SV debit and
  its log together; never a wallet debit without the meal);
- the journal agrees with the card (COMMITTED only if on the card, ABORTED only if not, UNCERTAIN
  only when the close itself was cut);
- tapping again (and again) ends with exactly one meal, one aid debit, one wallet debit, all
  journaled COMMITTED, nothing left uncertain, and the pupil served exactly once.

A second test kills the till process (in-process simulation: an exception nothing catches,
the journal handle dropped and reopened) at every APDU index, and restarts it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from canteen_builders import POS
from canteen_kit import (
    CardState,
    TillRig,
    card_state,
    cut_after,
    new_card_file,
    pupil_image,
)

from card_schema.uploads.records import TransactionState
from terminal.canteen.model import CanteenLogEntry, WalletDebit
from terminal.canteen.reasons import MealReason
from terminal.canteen.till import TapResult

AID, WALLET = 320, 1_000
PRICE = 380
SERVING = {MealReason.SERVED, MealReason.PAYMENT_COMPLETED, MealReason.RECOVERED}


def _reference_apdus(tmp_path: Path) -> int:
    card = new_card_file(tmp_path / "ref-card.json", pupil_image(canteen_aid=AID, wallet=WALLET))
    rig = TillRig(tmp_path / "ref", card) if (tmp_path / "ref").mkdir() is None else None
    assert rig is not None
    rig.insert()
    result = rig.till.serve()
    rig.close()
    assert result.reason is MealReason.SERVED and len(result.sessions) == 2
    return result.card_apdus


# One split-payment meal is 18 card APDUs today (checked below); the parameter list covers
# every index, and the test fails if the count changes so that the list is kept complete.
APDU_COUNT = 18


def test_the_split_meal_apdu_count_is_what_the_cut_tests_cover(tmp_path: Path) -> None:
    assert _reference_apdus(tmp_path) == APDU_COUNT


def _assert_before_or_after(state: CardState) -> None:
    meal_logged = len(state.meals) == 1
    aid_debited = state.canteen_aid == 0
    assert state.canteen_aid in (AID, 0)
    assert meal_logged == aid_debited, "aid debit and meal log are one session"
    wallet_debited = state.wallet == WALLET - (PRICE - AID)
    assert state.wallet in (WALLET, WALLET - (PRICE - AID))
    assert wallet_debited == (len(state.wallet_debits) == 1)
    assert not wallet_debited or meal_logged, "never a wallet debit without the meal"
    assert (state.books, state.sport) == (5_000, 3_000), "ring-fenced aid never touched"


def _assert_journal_agrees(rig: TillRig, state: CardState) -> None:
    for record in rig.journal.records():
        written = record.intent.written_event
        assert written is not None
        if record.intent.application == "cursus":
            on_card = CanteenLogEntry.from_record(written) in state.meals
        else:
            on_card = WalletDebit.from_record(written) in state.wallet_debits
        if record.state is TransactionState.COMMITTED:
            assert on_card, f"record {record.seq} committed but not on the card"
        elif record.state is TransactionState.ABORTED:
            assert not on_card, f"record {record.seq} aborted but on the card"


def _assert_final(rig: TillRig, results: list[TapResult], *, killed: bool = False) -> None:
    state = card_state(rig.card_path)
    assert len(state.meals) == 1
    assert state.canteen_aid == 0
    assert state.wallet == WALLET - (PRICE - AID)
    assert len(state.wallet_debits) == 1
    records = rig.journal.records()
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert sorted(r.intent.application for r in committed) == ["cursus", "wallet"]
    assert not rig.journal.undecided()
    served = sum(r.reason in SERVING for r in results)
    if killed and served == 0:
        # Killed after the last journal commit and before the screen said "Bon appétit": the
        # meal is paid and journaled once; the cashier sees it registered at this till.
        last = results[-1]
        assert last.reason is MealReason.ALREADY_SERVED
        assert last.decision is not None and last.decision.previous is not None
        assert last.decision.previous.terminal_id == POS
        assert any("Repas enregistré à 12:05 (caisse 7)" in line for line in last.lines)
    else:
        assert served == 1, [r.reason for r in results]
    # Money journaled = money taken from the card, once.
    moved = sum(m.amount for r in committed for m in r.intent.movements)
    assert moved == -PRICE


@pytest.mark.parametrize("index", range(APDU_COUNT))
def test_power_cut_after_each_apdu_then_retry(tmp_path: Path, index: int) -> None:
    card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=AID, wallet=WALLET))
    rig = TillRig(tmp_path, card)
    rig.insert(fault_hook=cut_after(index))
    first = rig.till.serve()
    state = card_state(card)
    _assert_before_or_after(state)
    _assert_journal_agrees(rig, state)
    if first.reason not in SERVING:
        assert first.reason is MealReason.TAP_AGAIN
    results = [first]
    for _ in range(2):  # the pupil taps again (a second retry must change nothing)
        rig.clock.now = rig.clock.now.replace(minute=rig.clock.now.minute + 1)
        rig.insert()
        results.append(rig.till.serve())
        _assert_before_or_after(card_state(card))
    _assert_final(rig, results)
    rig.close()


class Killed(BaseException):
    """The till process dies here (nothing in the till catches a BaseException)."""


@pytest.mark.parametrize("index", range(APDU_COUNT))
def test_till_killed_after_each_apdu_then_restarted(tmp_path: Path, index: int) -> None:
    card = new_card_file(tmp_path / "card.json", pupil_image(canteen_aid=AID, wallet=WALLET))
    rig = TillRig(tmp_path, card)

    def kill(i: int) -> None:
        if i == index:
            raise Killed

    emulated = rig.insert(fault_hook=kill)
    with pytest.raises(Killed):
        rig.till.serve()
    emulated.power_off()  # the card leaves the field with the dead till
    rig.restart()  # PENDING records become UNCERTAIN at open
    _assert_journal_agrees(rig, card_state(card))
    results = []
    for _ in range(2):
        rig.clock.now = rig.clock.now.replace(minute=rig.clock.now.minute + 1)
        rig.insert()
        results.append(rig.till.serve())
    _assert_final(rig, results, killed=True)
    rig.close()
