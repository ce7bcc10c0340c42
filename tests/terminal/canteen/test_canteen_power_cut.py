"""Power cut after every card APDU of a canteen debit (aid + wallet: two sessions), then retry.

For each APDU index of a meal paid 3,20 € from the canteen aid and 0,60 € from the wallet, the
emulated card loses power right after executing that APDU (its answer is lost). Then:

- the card is before-or-after for each session (aid debit and meal log together; SV debit and
  its log together; never a wallet debit without the meal);
- the journal agrees with the card (COMMITTED only if on the card, ABORTED only if not, UNCERTAIN
  only when the close itself was cut);
- tapping again (and again) ends with exactly one meal, one aid debit, one wallet debit, all
  journaled COMMITTED, nothing left uncertain, and the pupil served exactly once.

The till process killed (a real SIGKILL) at every APDU index and every journaling step, then
restarted: test_canteen_kill.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from canteen_kit import (
    SERVING,
    SPLIT_MEAL_APDUS,
    TillRig,
    assert_before_or_after,
    assert_final,
    assert_journal_agrees,
    card_state,
    cut_after,
    reference_meal,
    split_meal_card,
)

from terminal.canteen.reasons import MealReason


def test_the_split_meal_apdu_count_is_what_the_cut_tests_cover(tmp_path: Path) -> None:
    # The cut and kill tests cover every index below the count: it must still be the count.
    assert reference_meal(tmp_path).card_apdus == SPLIT_MEAL_APDUS


@pytest.mark.parametrize("index", range(SPLIT_MEAL_APDUS))
def test_power_cut_after_each_apdu_then_retry(tmp_path: Path, index: int) -> None:
    card = split_meal_card(tmp_path / "card.json")
    rig = TillRig(tmp_path, card)
    rig.insert(fault_hook=cut_after(index))
    first = rig.till.serve()
    state = card_state(card)
    assert_before_or_after(state)
    assert_journal_agrees(rig, state)
    if first.reason not in SERVING:
        assert first.reason is MealReason.TAP_AGAIN
    results = [first]
    for _ in range(2):  # the pupil taps again (a second retry must change nothing)
        rig.clock.now = rig.clock.now.replace(minute=rig.clock.now.minute + 1)
        rig.insert()
        results.append(rig.till.serve())
        assert_before_or_after(card_state(card))
    assert_final(rig, results)
    rig.close()
