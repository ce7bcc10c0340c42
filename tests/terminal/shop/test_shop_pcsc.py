"""The shop till through the real pcscd, with the emulated card and a shop SAM.

A bookshop (registered for ``books``) and a sports club (``sport``): ring-fence refusals (sport
at the bookshop, books at the club, a card with canteen aid only), sales paid from the matching
counter only, the rest paid outside the card, a refund within the day's cap, and one beyond it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from shop_kit import (
    SHOP_SAM_SERIAL,
    TERMINAL_ID,
    Clock,
    aid_state,
    customer_image,
    new_card_file,
    shop_keys,
    shop_till,
)

from card_schema.uploads.records import TransactionKind, TransactionState
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.pcsc_stack import PCSCStack
from hardware.sam.emulator import EmulatedSAM
from terminal.canteen.screen import RecordingScreen
from terminal.journal.store import Journal
from terminal.shop.till import ShopReason, ShopResult, ShopTill

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def card_in_reader(stack: PCSCStack, path: Path) -> Iterator[None]:
    with VPCDBridge(EmulatedCard(CardImageStore(path)), stack.card_port, name="card") as bridge:
        assert bridge.wait_connected(5)
        assert stack.wait_for_card_state(stack.card_reader, True, 5)
        yield
    assert stack.wait_for_card_state(stack.card_reader, False, 5)


def test_shop_ring_fence_sales_and_refunds_through_pcscd(
    pcsc_stack: PCSCStack, tmp_path: Path
) -> None:
    sam = EmulatedSAM(shop_keys(), SHOP_SAM_SERIAL, counter_file=tmp_path / "sam.json")
    card = new_card_file(tmp_path / "card.json", customer_image(books=5_000, sport=3_000))
    canteen_only = new_card_file(
        tmp_path / "canteen.json",
        customer_image(books=0, sport=0, canteen=10_000, serial=bytes.fromhex("0000000066600002")),
    )
    screen = RecordingScreen()
    clock = Clock()
    with (
        VPCDBridge(sam, pcsc_stack.sam_port, name="sam") as sam_bridge,
        Journal.open(tmp_path / "bookshop.journal", TERMINAL_ID) as books_journal,
        Journal.open(tmp_path / "club.journal", "SHOP-CLUB-1") as club_journal,
    ):
        assert sam_bridge.wait_connected(5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
        card_reader = PCSCReader(pcsc_stack.card_reader)
        sam_reader = PCSCReader(pcsc_stack.sam_reader)
        bookshop = shop_till(
            card_reader, sam_reader, books_journal, frozenset({"books"}), clock=clock, screen=screen
        )
        club = shop_till(
            card_reader, sam_reader, club_journal, frozenset({"sport"}), clock=clock, screen=screen
        )

        def at(till: ShopTill, path: Path, operation: str, purpose: str, amount: int) -> ShopResult:
            with card_in_reader(pcsc_stack, path):
                result: ShopResult = getattr(till, operation)(purpose, amount)
                card_reader.disconnect()
            return result

        start = aid_state(card)
        # Ring-fence: the bookshop takes no sport aid, the club no book aid; nothing is sent.
        refused = at(bookshop, card, "sale", "sport", 1_000)
        assert refused.reason == ShopReason.NOT_REGISTERED and refused.card_apdus == 0
        assert at(club, card, "sale", "books", 1_000).reason == ShopReason.NOT_REGISTERED
        assert aid_state(card) == start
        # Canteen aid never pays a shop: a card with canteen aid only gets nothing at the bookshop.
        canteen_start = aid_state(canteen_only)
        none = at(bookshop, canteen_only, "sale", "books", 1_000)
        assert none.reason == ShopReason.NO_AID
        assert aid_state(canteen_only) == canteen_start

        # A book sale: only the books counter pays.
        sale = at(bookshop, card, "sale", "books", 2_350)
        assert sale.reason == ShopReason.PAID
        assert "Payé par l'aide Cursus livres et matériel : 23,50 €" in screen.last
        after_sale = aid_state(card)
        assert after_sale.books == 5_000 - 2_350
        assert (after_sale.sport, after_sale.canteen, after_sale.wallet) == (
            start.sport,
            start.canteen,
            start.wallet,
        )
        # A sport sale above the sport aid: the aid pays 30 €, the rest is paid outside the card.
        sport = at(club, card, "sale", "sport", 4_000)
        assert sport.reason == ShopReason.PAID
        assert (sport.aid_amount, sport.rest) == (3_000, 1_000)
        assert "Reste à payer hors carte : 10,00 €" in screen.last
        after_sport = aid_state(card)
        assert (after_sport.books, after_sport.sport) == (2_650, 0)
        assert after_sport.canteen == start.canteen

        # Refund at the bookshop: 10 € within today's 23,50 €, then 20 € more is refused.
        refund = at(bookshop, card, "refund", "books", 1_000)
        assert refund.reason == ShopReason.REFUNDED
        assert aid_state(card).books == 3_650
        over = at(bookshop, card, "refund", "books", 2_000)
        assert over.reason == ShopReason.REFUND_OVER_CAP
        assert "Au plus 13,50 € remboursables" in screen.last
        assert aid_state(card).books == 3_650
        # The club never sold books: it refunds none (not registered), and its sport cap holds.
        assert at(club, card, "refund", "books", 100).reason == ShopReason.NOT_REGISTERED
        assert at(club, card, "refund", "sport", 3_001).reason == ShopReason.REFUND_OVER_CAP
        # The rest of the day's books sale can still be refunded: exactly the cap.
        assert at(bookshop, card, "refund", "books", 1_350).reason == ShopReason.REFUNDED
        assert aid_state(card).books == 5_000
        # The next day, the same till refunds nothing of yesterday's sale.
        clock.now = clock.now.replace(day=clock.now.day + 1)
        sold_today = at(bookshop, card, "sale", "books", 500)
        assert sold_today.reason == ShopReason.PAID
        assert at(bookshop, card, "refund", "books", 600).reason == ShopReason.REFUND_OVER_CAP

        book_records = books_journal.records()
        club_records = club_journal.records()
    # The SAM left its reader: the next test's SAM is seen afresh.
    assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, False, 5)
    assert all(r.state is TransactionState.COMMITTED for r in book_records + club_records)
    assert [(r.intent.kind, r.intent.movements[0].amount) for r in book_records] == [
        (TransactionKind.AID_DEBIT, -2_350),
        (TransactionKind.AID_REFUND, 1_000),
        (TransactionKind.AID_REFUND, 1_350),
        (TransactionKind.AID_DEBIT, -500),
    ]
    assert [r.intent.movements[0].purse for r in club_records] == ["cursus.sport_aid"]


def test_split_sale_with_the_wallet_through_pcscd(pcsc_stack: PCSCStack, tmp_path: Path) -> None:
    sam = EmulatedSAM(shop_keys(), SHOP_SAM_SERIAL, counter_file=tmp_path / "sam.json")
    card = new_card_file(tmp_path / "card.json", customer_image(books=1_000))
    screen = RecordingScreen()
    with (
        VPCDBridge(sam, pcsc_stack.sam_port, name="sam") as sam_bridge,
        Journal.open(tmp_path / "bookshop.journal", TERMINAL_ID) as journal,
    ):
        assert sam_bridge.wait_connected(5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
        card_reader = PCSCReader(pcsc_stack.card_reader)
        till = shop_till(
            card_reader,
            PCSCReader(pcsc_stack.sam_reader),
            journal,
            frozenset({"books"}),
            screen=screen,
        )
        with card_in_reader(pcsc_stack, card):
            result = till.sale("books", 1_250, wallet=True)
            card_reader.disconnect()
        kinds = [(r.state, r.intent.kind) for r in journal.records()]
    assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, False, 5)
    assert result.reason == ShopReason.PAID
    assert "Payé par l'aide Cursus livres et matériel : 10,00 €" in screen.last
    assert "Payé par le porte-monnaie : 2,50 €" in screen.last
    state = aid_state(card)
    assert (state.books, state.wallet, state.canteen) == (0, 2_000 - 250, 10_000)
    assert kinds == [
        (TransactionState.COMMITTED, TransactionKind.AID_DEBIT),
        (TransactionState.COMMITTED, TransactionKind.SV_DEBIT),
    ]
