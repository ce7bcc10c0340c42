"""Power cut after every card APDU of a shop sale, then the cashier tries again.

For each APDU index of a 23,50 € book sale, the emulated card loses power right after executing
that APDU (its answer is lost). Then: the card holds the sale entirely or not at all, the journal
agrees with the card, and trying again (twice) ends with exactly one debit of 23,50 € on the
books counter, one COMMITTED record, nothing UNCERTAIN, and the other counters untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shop_kit import ShopRig, aid_state, customer_image, cut_after, new_card_file

from card_schema.uploads.records import TransactionKind, TransactionState
from terminal.shop.till import ShopReason

PRICE = 2_350
BOOKS = 5_000
# Card APDUs of the sale: Select Cursus, Read Records, Get Data, Open, Decrease, Close,
# Ratification. The cut test covers every index; the count test fails if it changes.
SALE_APDUS = 7


def _reference(tmp_path: Path) -> int:
    ref = tmp_path / "ref"
    ref.mkdir()
    rig = ShopRig(ref, new_card_file(ref / "card.json", customer_image()))
    rig.insert()
    result = rig.till.sale("books", PRICE)
    assert result.reason == ShopReason.PAID
    rig.close()
    return result.card_apdus


def test_the_sale_apdu_count_is_what_the_cut_test_covers(tmp_path: Path) -> None:
    assert _reference(tmp_path) == SALE_APDUS


@pytest.mark.parametrize("index", range(SALE_APDUS))
def test_power_cut_after_each_apdu_of_a_sale_then_retry(tmp_path: Path, index: int) -> None:
    card = new_card_file(tmp_path / "card.json", customer_image())
    before = aid_state(card)
    rig = ShopRig(tmp_path, card)
    rig.insert(fault_hook=cut_after(index))
    first = rig.till.sale("books", PRICE)
    state = aid_state(card)
    # Before or after, nothing in between, and nothing else touched.
    assert state.books in (BOOKS, BOOKS - PRICE)
    assert (state.sport, state.canteen, state.wallet) == (
        before.sport,
        before.canteen,
        before.wallet,
    )
    records = rig.journal.records()
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    if state.books == BOOKS:
        assert committed == [] and not first.done
    else:
        # On the card: journaled COMMITTED, or UNCERTAIN when the close answer was the one lost.
        assert len(records) == 1
        assert records[0].state in (TransactionState.COMMITTED, TransactionState.UNCERTAIN)
    results = [first]
    for _ in range(2):
        if results[-1].done:
            break
        rig.insert()
        results.append(rig.till.sale("books", PRICE))
    assert results[-1].done, [r.reason for r in results]
    final = aid_state(card)
    assert final.books == BOOKS - PRICE
    assert (final.sport, final.canteen, final.wallet) == (
        before.sport,
        before.canteen,
        before.wallet,
    )
    records = rig.journal.records()
    assert not [r for r in records if r.state is TransactionState.UNCERTAIN]
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert [(r.intent.kind, r.intent.movements[0].amount) for r in committed] == [
        (TransactionKind.AID_DEBIT, -PRICE)
    ]
    assert all(r.state is TransactionState.ABORTED for r in records if r not in committed)
    rig.close()
