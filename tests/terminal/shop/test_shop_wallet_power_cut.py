"""A split sale (aid, then the rest from the wallet with the holder's agreement) cut at every APDU.

A 23,50 € book sale on a card with 20,00 € of books aid and 20,00 € in the wallet: 20,00 € from
the aid (Cursus session), 3,50 € from the wallet (wallet session). For each card APDU, the card
loses power right after executing it; then the cashier tries the same sale again (up to three
times). In the end: the aid paid 20,00 € once, the wallet 3,50 € once, two COMMITTED records,
nothing UNCERTAIN, the other counters untouched; never a wallet debit without the aid part.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shop_kit import ShopRig, aid_state, customer_image, cut_after, new_card_file

from card_schema.uploads.records import TransactionKind, TransactionState
from terminal.shop.till import ShopReason

PRICE, BOOKS, WALLET = 2_350, 2_000, 2_000
REST = PRICE - BOOKS
# Card APDUs of the split sale; the cut test covers every index and the count test fails if the
# count changes.
SPLIT_SALE_APDUS = 15


def _card(path: Path) -> Path:
    return new_card_file(path, customer_image(books=BOOKS))


def test_split_sale_pays_aid_then_wallet(tmp_path: Path) -> None:
    rig = ShopRig(tmp_path, _card(tmp_path / "card.json"))
    rig.insert()
    result = rig.till.sale("books", PRICE, wallet=True)
    assert result.reason == ShopReason.PAID, result.lines
    assert (result.aid_amount, result.wallet_amount) == (BOOKS, REST)
    assert "Payé par le porte-monnaie : 3,50 €" in rig.screen.last
    assert "Aide livres et matériel restante : 0,00 €" in rig.screen.last
    state = aid_state(rig.card_path)
    assert (state.books, state.wallet) == (0, WALLET - REST)
    assert result.card_apdus == SPLIT_SALE_APDUS
    rig.close()


def test_wallet_short_writes_nothing(tmp_path: Path) -> None:
    card = new_card_file(tmp_path / "card.json", customer_image(books=BOOKS))
    rig = ShopRig(tmp_path, card)
    before = aid_state(card)
    rig.insert()
    assert rig.till.sale("books", BOOKS + WALLET + 1, wallet=True).reason == ShopReason.WALLET_SHORT
    assert aid_state(card) == before and rig.journal.records() == []
    rig.close()


@pytest.mark.parametrize("index", range(SPLIT_SALE_APDUS))
def test_power_cut_after_each_apdu_of_a_split_sale_then_retry(tmp_path: Path, index: int) -> None:
    card = _card(tmp_path / "card.json")
    before = aid_state(card)
    rig = ShopRig(tmp_path, card)
    rig.insert(fault_hook=cut_after(index))
    results = [rig.till.sale("books", PRICE, wallet=True)]
    state = aid_state(card)
    assert state.books in (BOOKS, 0) and state.wallet in (WALLET, WALLET - REST)
    assert not (state.wallet != WALLET and state.books == BOOKS)  # never the wallet alone
    for _ in range(3):
        if results[-1].done:
            break
        rig.insert()
        results.append(rig.till.sale("books", PRICE, wallet=True))
        state = aid_state(card)
        assert not (state.wallet != WALLET and state.books == BOOKS)
    assert results[-1].done, [r.reason for r in results]
    final = aid_state(card)
    assert (final.books, final.wallet) == (0, WALLET - REST)
    assert (final.sport, final.canteen) == (before.sport, before.canteen)
    records = rig.journal.records()
    assert not [r for r in records if r.state is TransactionState.UNCERTAIN]
    committed = sorted(
        (r.intent.kind.value, r.intent.movements[0].amount)
        for r in records
        if r.state is TransactionState.COMMITTED
    )
    assert committed == sorted(
        [(TransactionKind.AID_DEBIT.value, -BOOKS), (TransactionKind.SV_DEBIT.value, -REST)]
    )
    rig.close()
