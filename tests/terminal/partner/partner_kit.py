"""Emulated card and partner SAM for the partner reader tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from card_schema.records import decode_record, encode_record
from firmware_host.readers.base import Reader
from firmware_host.readers.pcsc import PCSCReader
from hardware.card.image import CardImage, CardImageStore
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.keystore import KeyFileStore, demo_key_refs
from terminal.fares.local_time import PARIS
from terminal.partner.reader import partner_key_refs

HOLDER_SERIAL = bytes.fromhex("0000000055500001")
PARTNER_SAM_SERIAL = bytes.fromhex("5A00F001")
TERMINAL_ID = "PARTNER-ML-AMIENS-1"
# Tuesday 1 December 2026, 10:20 in Amiens.
CONSULT_TIME = datetime(2026, 12, 1, 10, 20, tzinfo=PARIS)

SITUATION = {
    "version": 1,
    "age_band": "18-25",
    "status": "job_seeker",
    "valid_from": "2026-09-01",
    "valid_until": "2027-03-01",
    "referent": "mission_locale",
}
MOBILITY = {
    "right": "mobility_aid",
    "status": "open",
    "valid_from": "2026-09-01",
    "valid_until": "2027-08-31",
    "unit": "eurocents",
    "granted": 20_000,
    "remaining": 12_000,
    "partner": "region",
    "reference": 4242,
}
TRAINING = {
    "right": "training_account",
    "status": "open",
    "valid_from": "2026-01-01",
    "valid_until": "2028-12-31",
    "unit": "hours",
    "granted": 150,
    "remaining": 110,
    "partner": "france_travail",
    "reference": 77,
}


def all_keys() -> dict[str, bytes]:
    """Fixed, obviously fake master keys: key n is n+1 repeated 16 times (as the canteen's)."""
    return {ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())}


def region_keys() -> KeyFileStore:
    return KeyFileStore(all_keys())


def partner_keys() -> KeyFileStore:
    """The partner SAM's keys: the employment debit key and the traceability key only."""
    keys = all_keys()
    return KeyFileStore({ref.label: keys[ref.label] for ref in partner_key_refs()})


def holder_image(serial: bytes = HOLDER_SERIAL) -> CardImage:
    """A card with employment rights, and PLUM, Cursus and wallet data the partner must not read."""
    image = new_card(serial, region_keys())
    write_records(
        image, "employment", "situation", [encode_record("employment.situation", SITUATION)]
    )
    write_records(
        image,
        "employment",
        "rights",
        [encode_record("employment.right", MOBILITY), encode_record("employment.right", TRAINING)],
    )
    aid = {"books_equipment": 5_000, "sport_leisure": 3_000, "canteen": 10_000}
    aid |= {f"counter_{i}": 0 for i in range(4, 9)} | {"last_action": 0}
    write_records(image, "cursus", "aid_counters", [encode_record("cursus.aid_counters", aid)])
    set_sv_balance(image, "wallet", 2_000)
    return image


def new_card_file(path: Path, image: CardImage) -> Path:
    CardImageStore(path).commit(image)
    return path


def consultations(path: Path) -> list[dict[str, object]]:
    records = CardImageStore(path).load().applications["employment"].records["consultation_log"]
    return [decode_record("employment.consultation", r) for r in records if any(r)]


class Clock:
    def __init__(self, now: datetime = CONSULT_TIME) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingPCSCReader(PCSCReader):
    """A PC/SC reader that keeps every APDU it sends (to check what the partner asked)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(bytes(apdu))
        return super().transmit(apdu)


def selected_names(sent: list[bytes]) -> list[bytes]:
    """DF names or file ids of every Select File the reader sent."""
    return [a[5 : 5 + a[4]] for a in sent if len(a) > 4 and a[1] == 0xA4]


__all__ = ["Reader"]
