"""PC/SC driver against the real pcscd + vpcd, with the test chip behind the vpcd bridge."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from firmware_host.readers.base import CardRemovedError, NoCardError, ReaderNotFoundError
from firmware_host.readers.pcsc import PCSCReader, list_readers, matches
from hardware.bridges.testchip import TestChip
from hardware.bridges.vpcd import VPCDBridge
from hardware.pcsc_stack import PCSCStack

pytestmark = pytest.mark.integration

SELECT_PLUM = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"
READ_ENV = bytes.fromhex("00B2013C1D")
WAIT = 5.0


@pytest.fixture
def chip() -> TestChip:
    return TestChip()


@contextlib.contextmanager
def bridged(stack: PCSCStack, chip: TestChip) -> Iterator[VPCDBridge]:
    """The chip in the card slot; on exit, out of it, with pcscd's view settled both times."""
    with VPCDBridge(chip, stack.card_port, name="card") as bridge:
        assert bridge.wait_connected(WAIT)
        assert stack.wait_for_card_state(stack.card_reader, True, WAIT)
        yield bridge
    assert stack.wait_for_card_state(stack.card_reader, False, WAIT)


@pytest.fixture
def bridge(pcsc_stack: PCSCStack, chip: TestChip) -> Iterator[VPCDBridge]:
    with bridged(pcsc_stack, chip) as bridge:
        yield bridge


@pytest.fixture
def reader(pcsc_stack: PCSCStack, bridge: VPCDBridge) -> Iterator[PCSCReader]:
    reader = PCSCReader(pcsc_stack.card_reader)
    assert reader.wait_for_card(WAIT), "pcscd did not report the bridged card"
    reader.connect()
    yield reader
    reader.close()


def test_reader_names_match_fnmatch_and_regex_patterns(pcsc_stack: PCSCStack) -> None:
    assert list_readers("Regioncard vpcd*") == [pcsc_stack.card_reader, pcsc_stack.sam_reader]
    assert list_readers("re:vpcd 00 01$") == [pcsc_stack.sam_reader]
    assert matches("ACS ACR122U*", "ACS ACR122U PICC Interface 00 00")
    assert not matches("re:^OMNIKEY", "HID Global OMNIKEY 5022 Smart Card Reader 00 00")
    with pytest.raises(ReaderNotFoundError) as info:
        PCSCReader("No Such Reader*")
    assert info.value.may_have_reached_card is False


def test_connect_reads_the_atr_and_transmits(reader: PCSCReader, chip: TestChip) -> None:
    assert reader.atr == chip.atr
    assert reader.protocol == "T=1"
    assert reader.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"
    assert reader.transmit(READ_ENV) == chip.applications[0].files[7][0] + b"\x90\x00"


def test_61xx_and_6cxx_are_handled_through_pcscd(pcsc_stack: PCSCStack) -> None:
    chip = TestChip(t0_style=True)
    with bridged(pcsc_stack, chip):
        reader = PCSCReader(pcsc_stack.card_reader)
        try:
            assert reader.wait_for_card(WAIT)
            reader.connect()
            assert reader.transmit(SELECT_PLUM)[:2] == b"\x6f\x0d"  # via GET RESPONSE
            assert len(reader.transmit(bytes.fromhex("00B2013C10"))) == 31  # re-issued, Le 1D
        finally:
            reader.close()


def test_shared_mode_lets_two_handles_use_the_card(
    reader: PCSCReader, pcsc_stack: PCSCStack
) -> None:
    other = PCSCReader(pcsc_stack.card_reader)
    try:
        other.connect()
        assert other.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"
        assert reader.transmit(READ_ENV)[-2:] == b"\x90\x00"
    finally:
        other.close()


def test_card_removal_raises_and_reinsertion_is_seen(
    reader: PCSCReader, bridge: VPCDBridge, chip: TestChip
) -> None:
    reader.transmit(SELECT_PLUM)
    bridge.remove()
    assert reader.wait_for_removal(WAIT), "pcscd did not report the removal"
    with pytest.raises(CardRemovedError, match="removed") as info:
        reader.transmit(READ_ENV)
    assert info.value.may_have_reached_card is False  # pcscd refused before sending
    assert not reader.connected
    cycles = chip.power_cycles
    bridge.insert()
    assert reader.wait_for_card(WAIT), "pcscd did not report the re-insertion"
    assert reader.connect() == chip.atr
    assert chip.power_cycles > cycles
    assert reader.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"


def test_connect_without_a_card_raises_no_card(pcsc_stack: PCSCStack) -> None:
    reader = PCSCReader(pcsc_stack.sam_reader)  # nothing bridged on slot 1 in this test
    try:
        assert not reader.card_present()
        assert reader.wait_for_card(0.2) is False
        with pytest.raises(NoCardError) as info:
            reader.connect()
        assert info.value.may_have_reached_card is False
    finally:
        reader.close()
