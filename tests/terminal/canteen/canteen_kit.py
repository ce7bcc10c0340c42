"""Emulated card + SAM + journal for the canteen till tests (in-process readers).

The card image lives in a file (``CardImageStore``: atomic commit), so "the card after a power cut"
is whatever the file holds when a new :class:`EmulatedCard` powers up from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from canteen_builders import LUNCH_TIME, POS, SCHOOL, aid_record, student_record

from card_schema.records import decode_record
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImage, CardImageStore, PowerCut
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore, demo_key_refs
from terminal.canteen.menu import MenuBook
from terminal.canteen.model import CanteenLogEntry, WalletDebit, non_blank
from terminal.canteen.refusals import RefusalLog
from terminal.canteen.screen import RecordingScreen
from terminal.canteen.tariff import load_tariff
from terminal.canteen.till import CanteenTill
from terminal.journal.store import Journal

CARD_SERIAL = bytes.fromhex("0000000012345678")
SAM_SERIAL = bytes.fromhex("5A000001")
TERMINAL_ID = "CANTINE-0801234G-1"


def demo_keys() -> KeyFileStore:
    """Fixed, obviously fake master keys: key n is n+1 repeated 16 times."""
    return KeyFileStore({ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())})


def pupil_image(
    *,
    canteen_aid: int,
    wallet: int,
    books: int = 5_000,
    sport: int = 3_000,
    school: str = SCHOOL,
    boarding: str = "half_board",
    serial: bytes = CARD_SERIAL,
) -> CardImage:
    image = new_card(serial, demo_keys())
    write_records(image, "cursus", "student", [student_record(school=school, boarding=boarding)])
    write_records(image, "cursus", "aid_counters", [aid_record(canteen_aid, books, sport)])
    set_sv_balance(image, "wallet", wallet)
    return image


def new_card_file(path: Path, image: CardImage) -> Path:
    CardImageStore(path).commit(image)
    return path


@dataclass
class CardState:
    """What the card holds, in domain terms, for assertions."""

    tx_counter: int
    canteen_aid: int
    books: int
    sport: int
    wallet: int
    meals: list[CanteenLogEntry] = field(default_factory=list)
    wallet_debits: list[WalletDebit] = field(default_factory=list)


def card_state(path: Path) -> CardState:
    image = CardImageStore(path).load()
    cursus = image.applications["cursus"]
    aid = decode_record("cursus.aid_counters", cursus.records["aid_counters"][0])
    wallet = image.applications["wallet"]
    meals = [CanteenLogEntry.from_record(r) for r in non_blank(cursus.records["canteen_log"])]
    debits = [WalletDebit.from_record(r) for r in non_blank(wallet.records["sv_debit_log"])]
    return CardState(
        tx_counter=image.transaction_counter,
        canteen_aid=aid["canteen"],
        books=aid["books_equipment"],
        sport=aid["sport_leisure"],
        wallet=wallet.sv_balance,
        meals=[m for m in meals if m is not None],
        wallet_debits=[d for d in debits if d is not None],
    )


class Clock:
    """A settable clock (never the wall clock)."""

    def __init__(self, now: datetime = LUNCH_TIME) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class TillRig:
    """A till wired to an emulated card (file-backed) and SAM through in-process readers."""

    def __init__(self, tmp_path: Path, card_path: Path, *, clock: Clock | None = None) -> None:
        self.tmp_path = tmp_path
        self.card_path = card_path
        self.clock = clock or Clock()
        self.screen = RecordingScreen()
        self.sam = EmulatedSAM(demo_keys(), SAM_SERIAL, counter_file=tmp_path / "sam-counter.json")
        self.sam_reader = InProcessReader(self.sam, name="sam")
        self.card_reader = InProcessReader(None, name="card")
        self.journal_path = tmp_path / "till.journal"
        self.journal = Journal.open(self.journal_path, TERMINAL_ID)
        self.refusals = RefusalLog.beside(self.journal_path)
        self.till = self._till()

    def _till(self) -> CanteenTill:
        return CanteenTill(
            self.card_reader,
            self.sam_reader,
            self.journal,
            SCHOOL,
            load_tariff(),
            self.clock,
            self.screen,
            pos_id=POS,
            menus=MenuBook.load(),
            refusals=self.refusals,
        )

    def insert(self, fault_hook: Callable[[int], None] | None = None) -> EmulatedCard:
        """Put a freshly powered card (from the file) in the field."""
        self.card_reader.disconnect()
        self.card_reader.remove()
        card = EmulatedCard(CardImageStore(self.card_path), fault_hook=fault_hook)
        self.card_reader.insert(card)
        return card

    def restart(self) -> None:
        """The till process died and starts again: a new journal handle and a new till."""
        self.journal.close()
        self.journal = Journal.open(self.journal_path, TERMINAL_ID)
        self.card_reader.remove()
        self.card_reader = InProcessReader(None, name="card")
        self.sam_reader = InProcessReader(self.sam, name="sam")
        self.till = self._till()

    def close(self) -> None:
        self.card_reader.remove()
        self.journal.close()


def cut_after(index: int) -> Callable[[int], None]:
    """A card fault hook cutting the power right after the APDU ``index`` (0-based)."""

    def hook(i: int) -> None:
        if i == index:
            raise PowerCut(f"power cut after APDU {i}")

    return hook


def iter_indices(n: int) -> Iterator[int]:
    yield from range(n)
