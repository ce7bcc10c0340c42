"""Helpers of the engine and gate tests: realistic card images, emulated card + SAM rigs.

Cards are personalised in the factory way (``hardware.personalise``) with records encoded by the
card schema, with the products of the default tariff (``terminal/fares/data/default_tariff.json``:
card code 2 = carnet of 10, 10 = monthly pass 1 zone, 20 = annual pass with bike shelter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from card_schema.records import encode_record
from firmware_host.readers.base import CardRemovedError
from firmware_host.readers.inprocess import InProcessReader
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImage, CardImageStore, PowerCut
from hardware.personalise import new_card, set_sv_balance, write_records
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore, demo_key_refs

PARIS = ZoneInfo("Europe/Paris")
SERIAL = bytes.fromhex("0000000012345678")
SAM_SERIAL = bytes.fromhex("5A000001")
MONDAY = datetime(2025, 9, 15, 7, 30, tzinfo=PARIS)  # a school day
CARNET_TARIFF = 0x0202  # contract list: tariff type 20? no: FF layout is announced by 0x0FF1
FF_TARIFF = 0x0FF1  # contract-list tariff announcing the generic FF contract layout


def demo_keys() -> KeyFileStore:
    """Fixed, obviously fake master keys (key n is n+1 repeated 16 times)."""
    return KeyFileStore({ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())})


def environment(valid_until: str = "2030-12-31", profiles: tuple[int, ...] = ()) -> bytes:
    values: dict[str, Any] = {
        "EnvApplicationVersionNumber": 1,
        "EnvNetworkId": 250000,
        "EnvApplicationIssuerId": 1,
        "EnvApplicationValidityEndDate": valid_until,
    }
    if profiles:
        values["HolderProfiles"] = [
            {
                "HolderProfileNetworkId": 250000,
                "HolderProfileNumber": p,
                "HolderProfileDate": "2030-08-31",
            }
            for p in profiles
        ]
    return encode_record("plum.environment", values)


def contract(
    card_code: int,
    start: str = "2025-01-01",
    end: str | None = "2026-12-31",
    zones: tuple[int, ...] = (),
    services: int = 0,
) -> bytes:
    validity: dict[str, Any] = {"ContractValidityStartDate": start}
    if end is not None:
        validity["ContractValidityEndDate"] = end
    if zones:
        validity["ContractValidityZones"] = list(zones)
    values: dict[str, Any] = {
        "_layout": "FF",
        "ContractNetworkId": 250000,
        "ContractProvider": 1,
        "ContractTariff": card_code,
        "ContractSerialNumber": 1000 + card_code,
        "ContractValidityInfo": validity,
        "ContractStatus": 1,
    }
    if services:
        values["ContractServices"] = services
    return encode_record("plum.contract", values, tariff=FF_TARIFF)


def contract_list(pointers: list[int]) -> bytes:
    return encode_record(
        "plum.contract_list",
        {
            "BestContracts": [
                {
                    "BestContractNetworkId": 250000,
                    "BestContractTariff": FF_TARIFF,
                    "BestContractPointer": p,
                }
                for p in pointers
            ]
        },
    )


def counters(values: dict[int, int]) -> bytes:
    return encode_record("plum.counters", {f"counter_{i}": values.get(i, 0) for i in range(1, 10)})


def make_card(
    serial: bytes = SERIAL,
    *,
    carnet_trips: int | None = None,
    monthly_pass: bool = False,
    annual_pass: bool = False,
    sv_balance: int | None = None,
    school_transport_zones: tuple[int, ...] = (),
    mobility_trips: int | None = None,
    env_valid_until: str = "2030-12-31",
    profiles: tuple[int, ...] = (),
) -> CardImage:
    """A personalised card with the PLUM contracts asked for (slot 1 first).

    ``profiles``: holder profile numbers in the environment (1 scolaire, 3 job seeker...).
    """
    image = new_card(serial, demo_keys())
    write_records(image, "plum", "environment", [environment(env_valid_until, profiles)])
    records: list[bytes] = []
    counter_values: dict[int, int] = {}
    if annual_pass:
        records.append(contract(20, "2025-01-01", None, zones=(1,)))
    if monthly_pass:
        records.append(contract(10, "2025-09-01", "2025-09-30", zones=(1,)))
    if carnet_trips is not None:
        records.append(contract(2, "2025-01-01", "2026-12-31"))
        counter_values[len(records)] = carnet_trips
    if records:
        write_records(image, "plum", "contracts", records)
        write_records(
            image, "plum", "contract_list", [contract_list(list(range(1, len(records) + 1)))]
        )
    write_records(image, "plum", "counters", [counters(counter_values)])
    if sv_balance is not None:
        set_sv_balance(image, "wallet", sv_balance)
    if school_transport_zones:
        student = encode_record(
            "cursus.student",
            {
                "version": 1,
                "school_uai": "0801234G",
                "level": "premiere",
                "boarding": "half_board",
                "valid_from": "2025-09-01",
                "valid_until": "2026-07-04",
                "school_transport": "free",
                "transport_network_id": 250000,
                "transport_zones": list(school_transport_zones),
            },
        )
        write_records(image, "cursus", "student", [student])
    if mobility_trips is not None:
        right = encode_record(
            "employment.right",
            {
                "right": "mobility_aid",
                "status": "open",
                "valid_from": "2025-01-01",
                "valid_until": "2026-12-31",
                "unit": "none",
                "granted": mobility_trips,
                "remaining": mobility_trips,
                "partner": "mission_locale",
                "reference": 1,
            },
        )
        write_records(image, "employment", "rights", [right])
    return image


class CuttableReader(InProcessReader):
    """In-process reader that turns the emulator's :class:`PowerCut` into a card removal."""

    def _transmit_raw(self, apdu: bytes) -> bytes:
        try:
            return super()._transmit_raw(apdu)
        except PowerCut:
            self.remove()
            self._atr = None
            raise CardRemovedError(
                "power cut", reader=self.name, may_have_reached_card=True
            ) from None


@dataclass
class Rig:
    """An emulated card (image file) and SAM behind in-process readers."""

    directory: Path
    card_path: Path = field(init=False)
    card: EmulatedCard = field(init=False)
    sam: EmulatedSAM = field(init=False)
    reader: CuttableReader = field(init=False)
    sam_reader: InProcessReader = field(init=False)

    def __post_init__(self) -> None:
        self.card_path = self.directory / "card.json"
        self.sam = EmulatedSAM(demo_keys(), SAM_SERIAL, counter_file=self.directory / "sam.json")
        self.sam_reader = InProcessReader(self.sam, name="sam")
        self.reader = CuttableReader(None, name="card")
        self.card = EmulatedCard(CardImageStore(self.card_path))

    def personalise(self, image: CardImage) -> None:
        CardImageStore(self.card_path).commit(image)

    def image(self) -> CardImage:
        return CardImageStore(self.card_path).load()

    def present(self, fault_hook: Any = None) -> None:
        """Put the card in the field (a fresh power-up)."""
        self.card.fault_hook = fault_hook
        self.reader.remove()
        self.reader.insert(self.card)


class Clock:
    """A settable clock (aware UTC)."""

    def __init__(self, start: datetime = MONDAY) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def plum_records(image: CardImage, file: str) -> list[bytes]:
    return list(image.applications["plum"].records[file])


def today() -> date:
    return MONDAY.date()
