"""Emulated card + SAM + journal for the canteen till tests (in-process readers).

The card image lives in a file (``CardImageStore``: atomic commit), so "the card after a power cut"
is whatever the file holds when a new :class:`EmulatedCard` powers up from it.

The fault-injection tests (power cut, till killed, SAM reader failure) share one split-payment
meal: 3,80 € paid 3,20 € from the canteen aid and 0,60 € from the wallet (two sessions), and
the assertions on the card and the journal after a fault (:func:`assert_before_or_after`,
:func:`assert_journal_agrees`, :func:`assert_final`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from canteen_builders import LUNCH_TIME, POS, SCHOOL, aid_record, student_record

from card_schema.records import decode_record
from card_schema.uploads.records import TransactionState
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImage, CardImageStore, PowerCut
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore, demo_key_refs
from terminal.canteen.menu import MenuBook
from terminal.canteen.model import CanteenLogEntry, WalletDebit, non_blank
from terminal.canteen.reasons import MealReason
from terminal.canteen.refusals import RefusalLog
from terminal.canteen.screen import RecordingScreen
from terminal.canteen.tariff import load_tariff
from terminal.canteen.till import CanteenTill, TapResult
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


# -- the split-payment meal of the fault-injection tests ------------------------------------------

AID, WALLET = 320, 1_000  # the pupil's canteen aid and wallet balance, in cents
PRICE = 380  # the lunch: 3,20 € from the aid, 0,60 € from the wallet
SERVING = {MealReason.SERVED, MealReason.PAYMENT_COMPLETED, MealReason.RECOVERED}
# Card APDUs of the meal today; the fault tests cover every index, and
# test_canteen_power_cut.py fails if the count changes, so that their lists stay complete.
SPLIT_MEAL_APDUS = 18


def split_meal_card(path: Path) -> Path:
    """A card file for the split-payment meal (aid 3,20 €, wallet 10,00 €)."""
    return new_card_file(path, pupil_image(canteen_aid=AID, wallet=WALLET))


def reference_meal(tmp_path: Path, step_hook: Callable[[str], None] | None = None) -> TapResult:
    """The split-payment meal served on a fresh card by a fresh till, nothing injected
    (``step_hook``: the till's, to list its journaling steps)."""
    ref = tmp_path / "ref"
    ref.mkdir()
    rig = TillRig(ref, split_meal_card(ref / "card.json"))
    rig.till.step_hook = step_hook
    rig.insert()
    result = rig.till.serve()
    rig.close()
    assert result.reason is MealReason.SERVED and len(result.sessions) == 2
    return result


def assert_before_or_after(state: CardState) -> None:
    """Each session of the meal is on the card entirely or not at all."""
    meal_logged = len(state.meals) == 1
    aid_debited = state.canteen_aid == 0
    assert state.canteen_aid in (AID, 0)
    assert meal_logged == aid_debited, "aid debit and meal log are one session"
    wallet_debited = state.wallet == WALLET - (PRICE - AID)
    assert state.wallet in (WALLET, WALLET - (PRICE - AID))
    assert wallet_debited == (len(state.wallet_debits) == 1)
    assert not wallet_debited or meal_logged, "never a wallet debit without the meal"
    assert (state.books, state.sport) == (5_000, 3_000), "ring-fenced aid never touched"


def assert_journal_agrees(rig: TillRig, state: CardState) -> None:
    """COMMITTED only if on the card, ABORTED only if not (UNCERTAIN: the next tap decides)."""
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


def assert_final(rig: TillRig, results: list[TapResult], *, killed: bool = False) -> None:
    """One meal, one aid debit, one wallet debit, all COMMITTED; served once; money = journal."""
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
