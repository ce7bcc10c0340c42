"""Power cut after every card APDU of a consultation, then the holder presents the card again.

The card loses power right after executing APDU ``index`` (its answer is lost). The partner sees
the rights only if the card holds the consultation record; every consultation record on the card
has a COMMITTED journal record (the one whose close answer was lost is decided at the next
reading); nothing stays UNCERTAIN; the rights and the other applications never change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from partner_kit import Clock, consultations, holder_image, new_card_file, partner_keys

from card_schema.uploads.records import TransactionState
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore, PowerCut
from hardware.sam.emulator import EmulatedSAM
from terminal.canteen.screen import RecordingScreen
from terminal.journal.store import Journal
from terminal.partner.reader import PartnerReader

# Select, 3 Read Records, Get Data, Open, Append, Close, Ratification. The count test fails if it
# changes, so that the cut test keeps covering every index.
CONSULTATION_APDUS = 9


def cut_after(index: int) -> Callable[[int], None]:
    def hook(i: int) -> None:
        if i == index:
            raise PowerCut(f"power cut after APDU {i}")

    return hook


class Desk:
    def __init__(self, tmp_path: Path, card: Path) -> None:
        self.card = card
        sam = EmulatedSAM(partner_keys(), bytes.fromhex("5A00F001"), counter_file=tmp_path / "s")
        self.card_reader = InProcessReader(None, name="card")
        self.journal = Journal.open(tmp_path / "partner.journal", "PARTNER-1")
        self.reader = PartnerReader(
            self.card_reader,
            InProcessReader(sam, name="sam"),
            self.journal,
            partner="mission_locale",
            site=8021,
            terminal_number=3,
            clock=Clock(),
            screen=RecordingScreen(),
        )

    def present(self, fault: Callable[[int], None] | None = None) -> bool:
        self.card_reader.disconnect()
        self.card_reader.remove()
        self.card_reader.insert(EmulatedCard(CardImageStore(self.card), fault_hook=fault))
        return self.reader.consult(holder_agrees=True).shown


def test_the_consultation_apdu_count_is_what_the_cut_test_covers(tmp_path: Path) -> None:
    desk = Desk(tmp_path, new_card_file(tmp_path / "card.json", holder_image()))
    desk.card_reader.insert(EmulatedCard(CardImageStore(desk.card)))
    result = desk.reader.consult(holder_agrees=True)
    assert result.shown and result.card_apdus == CONSULTATION_APDUS
    desk.journal.close()


@pytest.mark.parametrize("index", range(CONSULTATION_APDUS))
def test_power_cut_after_each_apdu_of_a_consultation(tmp_path: Path, index: int) -> None:
    card = new_card_file(tmp_path / "card.json", holder_image())
    before = CardImageStore(card).load()
    desk = Desk(tmp_path, card)
    shown = desk.present(cut_after(index))
    logged = consultations(card)
    if shown:
        assert len(logged) == 1  # never shown without the record on the card
    assert len(logged) <= 1
    again = desk.present()
    assert again
    logged = consultations(card)
    records = desk.journal.records()
    assert not [r for r in records if r.state is TransactionState.UNCERTAIN]
    committed = [r for r in records if r.state is TransactionState.COMMITTED]
    assert len(committed) == len(logged) and len(logged) in (1, 2)
    assert sorted(r.intent.written_event for r in committed) == sorted(
        r
        for r in CardImageStore(card).load().applications["employment"].records["consultation_log"]
        if any(r)
    )
    after = CardImageStore(card).load()
    for app in ("plum", "cursus", "wallet"):
        assert after.applications[app].records == before.applications[app].records
    assert (
        after.applications["employment"].records["rights"]
        == before.applications["employment"].records["rights"]
    )
    desk.journal.close()
