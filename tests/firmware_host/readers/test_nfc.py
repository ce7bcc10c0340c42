"""nfcpy driver against nfcpy's real UDP device, with the test chip behind the nfc_udp bridge.

The reader tests run with the card as ISO 14443 type A and as type B (Calypso cards' usual type).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firmware_host.readers import open_reader
from firmware_host.readers.base import CardRemovedError, NoCardError, ReaderNotFoundError
from firmware_host.readers.nfc import (
    NFCReader,
    historical_from_atqb,
    historical_from_ats,
    pcsc_atr_from_historical,
)
from hardware.bridges.nfc_udp import NFCUDPBridge
from hardware.bridges.testchip import TestChip

SELECT_PLUM = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"


@pytest.fixture
def chip() -> TestChip:
    return TestChip()


APPLICATION_DATA = bytes.fromhex("00112233")


@pytest.fixture(params=["A", "B"])
def bridge(chip: TestChip, request: pytest.FixtureRequest) -> Iterator[NFCUDPBridge]:
    # FWI 7: FWT about 39 ms, so a removed card is noticed quickly by nfcpy's retries
    with NFCUDPBridge(
        chip, port=0, technology=request.param, fwi=7, application_data=APPLICATION_DATA
    ) as bridge:
        yield bridge


@pytest.fixture
def reader(bridge: NFCUDPBridge) -> Iterator[NFCReader]:
    reader = NFCReader(bridge.path, targets=(f"106{bridge.technology}",))
    reader.connect()
    yield reader
    reader.close()


def test_atr_is_the_pcsc_part3_atr(reader: NFCReader, chip: TestChip, bridge: NFCUDPBridge) -> None:
    assert reader.technology == bridge.technology
    if bridge.technology == "A":
        assert reader.atr == chip.atr  # the ATS carries the ATR's historical bytes
    else:
        # PC/SC part 3 for type B: 3B 88 80 01, application data, protocol info (FSCI 8,
        # ISO 14443-4, FWI 7), MBLI 0 from the ATTRIB answer, TCK
        assert reader.atr == bytes.fromhex("3B 88 80 01 00112233 00 81 70 00 F8")
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
        reader = NFCReader(bridge.path, targets=("106B",))
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


def test_both_types_sensed_and_the_last_one_polled_first() -> None:
    """Default targets (A then B): a type B card is found, then polled first at the next tap."""
    chip = TestChip()
    with NFCUDPBridge(chip, port=0, technology="B") as bridge:
        reader = NFCReader(bridge.path)
        try:
            polls: list[list[str]] = []
            clf = reader._frontend()
            sense = clf.sense

            def recording_sense(*targets: Any, **options: Any) -> Any:
                polls.append([str(t.brty) for t in targets])
                return sense(*targets, **options)

            clf.sense = recording_sense
            reader.connect()
            assert reader.technology == "B"
            assert reader.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"
            reader.disconnect()
            reader.connect()
            assert reader.transmit(SELECT_PLUM)[-2:] == b"\x90\x00"
            assert polls == [["106A", "106B"], ["106B", "106A"]]
        finally:
            reader.close()
    with NFCUDPBridge(chip, port=0, technology="A") as bridge:
        reader = NFCReader(bridge.path)
        try:
            assert reader.connect() == chip.atr
            assert reader.technology == "A"
        finally:
            reader.close()


def test_atqb_helper() -> None:
    atqb = bytes.fromhex("50 52434231 00112233 00 81 70")
    assert historical_from_atqb(atqb, b"\x00") == bytes.fromhex("00112233 00 81 70 00")
    assert historical_from_atqb(atqb, b"\x51") == bytes.fromhex("00112233 00 81 70 50")


def test_ats_helpers() -> None:
    ats = bytes.fromhex("0C 78 80 70 00") + b"RGNCARD"
    assert historical_from_ats(ats) == b"RGNCARD"
    assert pcsc_atr_from_historical(b"RGNCARD") == TestChip().atr
