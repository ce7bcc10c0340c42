"""One read sequence over the in-process, PC/SC (pcscd + vpcd) and nfcpy UDP paths: same answers.

The nfcpy path runs with the card as ISO 14443 type A and as type B; a type B card's ATR is the
one a PC/SC reader builds from its ATQB.

Run against the transport test chip and against the real emulated card (hardware.card), each path
with its own chip instance built from the same data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_host.readers.base import Reader
from firmware_host.readers.inprocess import InProcessReader
from firmware_host.readers.nfc import NFCReader
from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.nfc_udp import NFCUDPBridge
from hardware.bridges.testchip import TestChip
from hardware.bridges.vpcd import VPCDBridge
from hardware.icc import EmulatedICC
from hardware.pcsc_stack import PCSCStack

pytestmark = pytest.mark.integration

READ_SEQUENCE = [
    bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00",  # select PLUM by DF name
    bytes.fromhex("00B2013C1D"),  # environment, SFI 07
    *(bytes.fromhex(f"00B2{n:02X}441D") for n in (1, 2, 3)),  # event log, SFI 08
    bytes.fromhex("00B2014C1D"),  # first contract, SFI 09
    bytes.fromhex("00B2094C1D"),  # no record 9: 6A83
    bytes.fromhex("00A4040008") + b"NOSUCHAP" + b"\x00",  # unknown application: 6A82
    bytes.fromhex("94A4040008") + b"1TIC.ICA" + b"\x00",  # Calypso class byte
    bytes.fromhex("00B2013C1D"),
    bytes.fromhex("94B2015403"),  # per-contract counter file 202A (SFI 0A), as Lille readers
    bytes.fromhex("94A4080C042000202A"),  # 202A by path, then the current EF
    bytes.fromhex("94B2010403"),
]

ChipFactory = Callable[[], EmulatedICC]


def _emulated_card_factory(tmp_path: Path) -> ChipFactory:
    from hardware.card.emulator import EmulatedCard
    from hardware.card.image import CardImageStore
    from hardware.personalise import new_card, write_records

    image = new_card(bytes.fromhex("0102030405060708"), None)
    write_records(image, "plum", "environment", [b"\x25\x0e\x25" + bytes(range(26))])
    write_records(image, "plum", "events", [bytes([n]) * 29 for n in (1, 2, 3)])
    write_records(image, "plum", "contracts", [b"\xc0" * 29])
    path = tmp_path / "card.json"
    CardImageStore(path).commit(image)
    return lambda: EmulatedCard(CardImageStore(path))


@pytest.fixture(params=["testchip", "emulated_card"])
def chip_factory(request: pytest.FixtureRequest, tmp_path: Path) -> ChipFactory:
    if request.param == "testchip":
        return TestChip
    return _emulated_card_factory(tmp_path)


@contextlib.contextmanager
def inprocess_path(chip: EmulatedICC, stack: PCSCStack) -> Iterator[Reader]:
    with InProcessReader(chip) as reader:
        yield reader


@contextlib.contextmanager
def pcsc_path(chip: EmulatedICC, stack: PCSCStack) -> Iterator[Reader]:
    with VPCDBridge(chip, stack.card_port, name="card") as bridge:
        assert bridge.wait_connected(5)
        assert stack.wait_for_card_state(stack.card_reader, True, 5)
        with PCSCReader(stack.card_reader) as reader:
            yield reader
    assert stack.wait_for_card_state(stack.card_reader, False, 5)


@contextlib.contextmanager
def nfc_udp_a_path(chip: EmulatedICC, stack: PCSCStack) -> Iterator[Reader]:
    with (
        NFCUDPBridge(chip, port=0, technology="A") as bridge,
        NFCReader(bridge.path, targets=("106A",)) as reader,
    ):
        yield reader


@contextlib.contextmanager
def nfc_udp_b_path(chip: EmulatedICC, stack: PCSCStack) -> Iterator[Reader]:
    with (
        NFCUDPBridge(chip, port=0, technology="B") as bridge,
        NFCReader(bridge.path, targets=("106B",)) as reader,
    ):
        yield reader


def run_sequence(reader: Reader) -> list[bytes]:
    return [reader.atr] + [reader.transmit(apdu) for apdu in READ_SEQUENCE]


def test_same_read_sequence_gives_the_same_results_on_every_path(
    chip_factory: ChipFactory, pcsc_stack: PCSCStack
) -> None:
    results = {}
    for name, path in (
        ("inprocess", inprocess_path),
        ("pcsc", pcsc_path),
        ("nfc_udp_a", nfc_udp_a_path),
        ("nfc_udp_b", nfc_udp_b_path),
    ):
        with path(chip_factory(), pcsc_stack) as reader:
            results[name] = run_sequence(reader)
    reference = results["inprocess"]
    assert reference[1][-2:] == b"\x90\x00"
    assert reference[2][-2:] == b"\x90\x00" and len(reference[2]) == 31
    assert reference[7][-2:] == b"\x6a\x83"
    assert reference[8][-2:] == b"\x6a\x82"
    if chip_factory is not TestChip:  # the emulated card: counter 1 of 2069, read through 202A
        assert reference[11] == reference[13] == b"\x00\x00\x00\x90\x00"
    assert results["pcsc"] == reference
    assert results["nfc_udp_a"] == reference
    # type B: a PC/SC reader builds the ATR from the ATQB (PC/SC part 3), not from the chip's ATR:
    # application data 00000000, protocol info 00 81 B0 (FSCI 8, ISO 14443-4, FWI 11), MBLI 0
    assert results["nfc_udp_b"][0] == bytes.fromhex("3B 88 80 01 00000000 00 81 B0 00 38")
    assert results["nfc_udp_b"][1:] == reference[1:]
