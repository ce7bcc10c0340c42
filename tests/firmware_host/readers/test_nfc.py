"""nfcpy driver against nfcpy's real UDP device, with the test chip behind the nfc_udp bridge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware_host.readers import open_reader
from firmware_host.readers.base import CardRemovedError, NoCardError, ReaderNotFoundError
from firmware_host.readers.nfc import NFCReader, historical_from_ats, pcsc_atr_from_historical
from hardware.bridges.nfc_udp import NFCUDPBridge
from hardware.bridges.testchip import TestChip

SELECT_PLUM = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"


@pytest.fixture
def chip() -> TestChip:
    return TestChip()


@pytest.fixture
def bridge(chip: TestChip) -> Iterator[NFCUDPBridge]:
    # FWI 7: FWT about 39 ms, so a removed card is noticed quickly by nfcpy's retries
    with NFCUDPBridge(chip, port=0, fwi=7) as bridge:
        yield bridge


@pytest.fixture
def reader(bridge: NFCUDPBridge) -> Iterator[NFCReader]:
    reader = NFCReader(bridge.path, targets=("106A",))
    reader.connect()
    yield reader
    reader.close()


def test_atr_is_the_pcsc_part3_atr_of_the_ats(reader: NFCReader, chip: TestChip) -> None:
    assert reader.atr == chip.atr  # same ATR as a PC/SC reader shows
    assert reader.protocol == "T=CL"


def test_transmit_and_long_responses(reader: NFCReader, chip: TestChip) -> None:
    assert reader.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"
    long_record = reader.transmit(bytes.fromhex("00B201D400"))  # 254 bytes: chained I-blocks
    assert long_record == chip.applications[0].files[0x1A][0] + b"\x90\x00"


def test_removal_is_reported_as_card_removed(reader: NFCReader, bridge: NFCUDPBridge) -> None:
    reader.transmit(SELECT_PLUM)
    bridge.remove()
    with pytest.raises(CardRemovedError) as info:
        reader.transmit(SELECT_PLUM)
    assert info.value.may_have_reached_card is True  # the command was on the air
    assert reader.wait_for_removal(1.0)
    bridge.insert()
    assert reader.wait_for_card(3.0)
    reader.connect()
    assert reader.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"


def test_no_card_and_no_device() -> None:
    with NFCUDPBridge(TestChip(), port=0) as bridge:
        bridge.remove()
        reader = NFCReader(bridge.path, targets=("106A",))
        try:
            with pytest.raises(NoCardError) as info:
                reader.connect()
            assert info.value.may_have_reached_card is False
        finally:
            reader.close()
    with pytest.raises(ReaderNotFoundError):
        NFCReader("tty:regioncard-no-such-port:pn532").connect()


def test_open_reader_spec(bridge: NFCUDPBridge) -> None:
    reader = open_reader(f"nfc:{bridge.path}")
    try:
        assert isinstance(reader, NFCReader) and reader.path == bridge.path
    finally:
        reader.close()


def test_ats_helpers() -> None:
    ats = bytes.fromhex("0C 78 80 70 00") + b"RGNCARD"
    assert historical_from_ats(ats) == b"RGNCARD"
    assert pcsc_atr_from_historical(b"RGNCARD") == TestChip().atr
