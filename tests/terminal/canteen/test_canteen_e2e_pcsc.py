"""End to end through the real pcscd: emulated card and SAM behind vpcd, PC/SC readers, the till.

Several pupils at lunch: canteen aid only, aid + wallet (two sessions), wallet only, a second
tap in the same service, a pupil of another school, a pupil whose aid and wallet together fall
short. Then the same card is pulled from the reader in the middle of the wallet session and
tapped again. Checks the card images, the journal and the manager's report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from canteen_builders import OTHER_SCHOOL, SCHOOL
from canteen_kit import (
    SAM_SERIAL,
    TERMINAL_ID,
    Clock,
    card_state,
    demo_keys,
    new_card_file,
    pupil_image,
)

from card_schema.uploads.records import TransactionState
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore, PowerCut
from hardware.pcsc_stack import PCSCStack
from hardware.sam.emulator import EmulatedSAM
from terminal.canteen.menu import MenuBook
from terminal.canteen.reasons import MealReason
from terminal.canteen.refusals import RefusalLog
from terminal.canteen.report import daily_report
from terminal.canteen.screen import RecordingScreen
from terminal.canteen.tariff import load_tariff
from terminal.canteen.till import CanteenTill
from terminal.journal.store import Journal

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def card_in_reader(stack: PCSCStack, card: EmulatedCard) -> Iterator[None]:
    """The card is put on the reader for one tap, then taken away."""
    with VPCDBridge(card, stack.card_port, name="card") as bridge:
        assert bridge.wait_connected(5)
        assert stack.wait_for_card_state(stack.card_reader, True, 5)
        yield
    assert stack.wait_for_card_state(stack.card_reader, False, 5)


def test_canteen_debits_through_pcscd(pcsc_stack: PCSCStack, tmp_path: Path) -> None:
    sam = EmulatedSAM(demo_keys(), SAM_SERIAL, counter_file=tmp_path / "sam-counter.json")
    pupils = {
        "aid only": (
            pupil_image(canteen_aid=10_000, wallet=0, serial=b"\x00" * 7 + b"\x01"),
            MealReason.SERVED,
        ),
        "aid and wallet": (
            pupil_image(canteen_aid=320, wallet=1_000, serial=b"\x00" * 7 + b"\x02"),
            MealReason.SERVED,
        ),
        "wallet only": (
            pupil_image(canteen_aid=0, wallet=500, serial=b"\x00" * 7 + b"\x03"),
            MealReason.SERVED,
        ),
        "other school": (
            pupil_image(
                canteen_aid=10_000, wallet=0, school=OTHER_SCHOOL, serial=b"\x00" * 7 + b"\x04"
            ),
            MealReason.OTHER_SCHOOL,
        ),
        "short": (
            pupil_image(canteen_aid=100, wallet=100, serial=b"\x00" * 7 + b"\x05"),
            MealReason.INSUFFICIENT_BALANCE,
        ),
    }
    paths = {
        name: new_card_file(tmp_path / f"{i}.json", image)
        for i, (name, (image, _)) in enumerate(pupils.items())
    }
    journal_path = tmp_path / "till.journal"
    clock = Clock()
    screen = RecordingScreen()
    with (
        VPCDBridge(sam, pcsc_stack.sam_port, name="sam") as sam_bridge,
        Journal.open(journal_path, TERMINAL_ID) as journal,
    ):
        assert sam_bridge.wait_connected(5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.sam_reader, True, 5)
        sam_reader = PCSCReader(pcsc_stack.sam_reader)
        card_reader = PCSCReader(pcsc_stack.card_reader)
        till = CanteenTill(
            card_reader,
            sam_reader,
            journal,
            SCHOOL,
            load_tariff(),
            clock,
            screen,
            pos_id=7,
            menus=MenuBook.load(),
            refusals=RefusalLog.beside(journal_path),
        )
        for name, (_, expected) in pupils.items():
            with card_in_reader(pcsc_stack, EmulatedCard(CardImageStore(paths[name]))):
                result = till.serve()
                card_reader.disconnect()
            assert result.reason is expected, name
            assert screen.last[0] == expected.text
        # A second tap in the same service: refused, nothing charged.
        with card_in_reader(pcsc_stack, EmulatedCard(CardImageStore(paths["aid only"]))):
            again = till.serve()
            card_reader.disconnect()
        assert again.reason is MealReason.ALREADY_SERVED

        # The card loses power right after executing the wallet session's SV Debit (its answer
        # is lost; through vpcd the reader gets 6F00 and the session is gone on the card): the
        # meal is logged, the wallet part is not.
        torn = new_card_file(
            tmp_path / "torn.json",
            pupil_image(canteen_aid=320, wallet=1_000, serial=b"\x00" * 7 + b"\x06"),
        )
        sv_debit_index = 15  # select, read, sv get, select, 3 reads, get data, open, dec, append,
        # close, select wallet, open, sv get, sv debit (0-based: 15)

        def pull_card(index: int) -> None:
            if index == sv_debit_index:
                raise PowerCut("card pulled")

        with card_in_reader(pcsc_stack, EmulatedCard(CardImageStore(torn), fault_hook=pull_card)):
            first = till.serve()
            card_reader.disconnect()
        assert not first.served
        state = card_state(torn)
        assert len(state.meals) == 1 and state.wallet == 1_000
        clock.now = clock.now.replace(minute=clock.now.minute + 1)
        with card_in_reader(pcsc_stack, EmulatedCard(CardImageStore(torn))):
            second = till.serve()
            card_reader.disconnect()
        assert second.reason is MealReason.PAYMENT_COMPLETED
        state = card_state(torn)
        assert (state.canteen_aid, state.wallet, len(state.meals)) == (0, 940, 1)
        sam_reader.close()
        records = journal.records()
        refusals = RefusalLog.beside(journal_path).read()

    # Card side
    assert card_state(paths["aid only"]).canteen_aid == 10_000 - 380
    split = card_state(paths["aid and wallet"])
    assert (split.canteen_aid, split.wallet, split.books, split.sport) == (0, 940, 5_000, 3_000)
    assert card_state(paths["wallet only"]).wallet == 120
    assert card_state(paths["other school"]).canteen_aid == 10_000
    assert card_state(paths["short"]).wallet == 100

    # Journal side: each committed record's event is what the card holds.
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert len(committed) == 7  # aid-only 1, split 2, wallet-only 2, torn card 2
    assert all(r.sam_signature for r in committed)
    assert all(r.state.decided for r in records)

    report = daily_report(records, refusals, SCHOOL, clock.now.date())
    assert report.meals == 4
    assert report.to_json()["amounts_by_funder"]["region"]["amount"] == 380 + 320 + 320
    assert report.wallet_total == 60 + 380 + 60
    assert not report.pending_payments
    assert report.refusals_by_reason[MealReason.OTHER_SCHOOL] == 1
    assert report.refusals_by_reason[MealReason.INSUFFICIENT_BALANCE] == 1
    assert report.refusals_by_reason[MealReason.ALREADY_SERVED] == 1
