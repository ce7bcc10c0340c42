"""Emulated card and shop SAM for the shop till tests (in-process or through pcscd)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from card_schema.crypto import KeyRef, KeyRole
from card_schema.records import decode_record, encode_record
from firmware_host.readers.base import Reader
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImage, CardImageStore, PowerCut
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import TRACE_KEY, KeyFileStore, demo_key_refs
from terminal.canteen.screen import RecordingScreen
from terminal.fares.local_time import PARIS
from terminal.journal.store import Journal
from terminal.shop.till import ShopTill

CARD_SERIAL = bytes.fromhex("0000000066600001")
SHOP_SAM_SERIAL = bytes.fromhex("5A00B001")
TERMINAL_ID = "SHOP-LIBRAIRIE-AMIENS-1"
# Saturday 5 December 2026, 15:30 in Amiens.
SHOP_TIME = datetime(2026, 12, 5, 15, 30, tzinfo=PARIS)


def all_keys() -> dict[str, bytes]:
    """Fixed, obviously fake master keys: key n is n+1 repeated 16 times (as the canteen's)."""
    return {ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())}


def shop_keys() -> KeyFileStore:
    """A shop SAM: Cursus debit (sales) and load (refunds) keys, the wallet debit key (the rest
    of a sale, with the holder's agreement), and the traceability key."""
    keys = all_keys()
    refs = [
        KeyRef("cursus", KeyRole.DEBIT),
        KeyRef("cursus", KeyRole.LOAD),
        KeyRef("wallet", KeyRole.DEBIT),
        TRACE_KEY,
    ]
    return KeyFileStore({ref.label: keys[ref.label] for ref in refs})


def customer_image(
    *, books: int = 5_000, sport: int = 3_000, canteen: int = 10_000, serial: bytes = CARD_SERIAL
) -> CardImage:
    image = new_card(serial, KeyFileStore(all_keys()))
    aid = {"books_equipment": books, "sport_leisure": sport, "canteen": canteen}
    aid |= {f"counter_{i}": 0 for i in range(4, 9)} | {"last_action": 0}
    write_records(image, "cursus", "aid_counters", [encode_record("cursus.aid_counters", aid)])
    set_sv_balance(image, "wallet", 2_000)
    return image


def new_card_file(path: Path, image: CardImage) -> Path:
    CardImageStore(path).commit(image)
    return path


@dataclass(frozen=True)
class Aid:
    books: int
    sport: int
    canteen: int
    wallet: int
    tx_counter: int


def aid_state(path: Path) -> Aid:
    image = CardImageStore(path).load()
    aid = decode_record(
        "cursus.aid_counters", image.applications["cursus"].records["aid_counters"][0]
    )
    return Aid(
        aid["books_equipment"],
        aid["sport_leisure"],
        aid["canteen"],
        image.applications["wallet"].sv_balance,
        image.transaction_counter,
    )


class Clock:
    def __init__(self, now: datetime = SHOP_TIME) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def shop_till(
    card_reader: Reader,
    sam_reader: Reader,
    journal: Journal,
    purposes: frozenset[str],
    *,
    clock: Clock | None = None,
    screen: RecordingScreen | None = None,
) -> ShopTill:
    return ShopTill(
        card_reader,
        sam_reader,
        journal,
        shop_name="Librairie du Beffroi",
        purposes=purposes,
        pos_id=12,
        clock=clock or Clock(),
        screen=screen or RecordingScreen(),
    )


class ShopRig:
    """A bookshop till on in-process readers, the card in a file (atomic commits)."""

    def __init__(self, tmp_path: Path, card_path: Path) -> None:
        self.card_path = card_path
        self.sam = EmulatedSAM(shop_keys(), SHOP_SAM_SERIAL, counter_file=tmp_path / "sam.json")
        self.card_reader = InProcessReader(None, name="card")
        self.journal = Journal.open(tmp_path / "shop.journal", TERMINAL_ID)
        self.clock = Clock()
        self.screen = RecordingScreen()
        self.till = shop_till(
            self.card_reader,
            InProcessReader(self.sam, name="sam"),
            self.journal,
            frozenset({"books"}),
            clock=self.clock,
            screen=self.screen,
        )

    def insert(self, fault_hook: Callable[[int], None] | None = None) -> None:
        self.card_reader.disconnect()
        self.card_reader.remove()
        self.card_reader.insert(EmulatedCard(CardImageStore(self.card_path), fault_hook=fault_hook))

    def close(self) -> None:
        self.card_reader.remove()
        self.journal.close()


def cut_after(index: int) -> Callable[[int], None]:
    def hook(i: int) -> None:
        if i == index:
            raise PowerCut(f"power cut after APDU {i}")

    return hook
