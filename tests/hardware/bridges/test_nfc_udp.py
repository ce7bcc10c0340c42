"""nfcpy UDP bridge: frame transcripts on the wire, then nfcpy's own Type4Tag against it.

Both technologies: type A (REQA, anticollision, RATS) and type B (REQB, ATQB, ATTRIB, HLTB), the
ISO-DEP blocks being the same.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import nfc
import nfc.tag.tt4
import pytest

from hardware.bridges.nfc_udp import NFCUDPBridge, historical_bytes
from hardware.bridges.testchip import TestChip
from hardware.bridges.vpcd import BridgeError

SELECT_PLUM = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"


class Radio:
    """The reader side of nfcpy's UDP link, frame by frame."""

    def __init__(self, port: int, brty: bytes = b"106A") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.3)
        self.addr = ("127.0.0.1", port)
        self.brty = brty

    def send(self, hexframe: str) -> None:
        self.sock.sendto(self.brty + b" " + bytes.fromhex(hexframe).hex().encode(), self.addr)

    def exchange(self, hexframe: str) -> bytes | None:
        self.send(hexframe)
        try:
            datagram = self.sock.recv(1024)
        except TimeoutError:
            return None
        brty, data = datagram.split()
        assert brty == self.brty
        return bytes.fromhex(data.decode())

    def activate(self) -> bytes:
        assert self.exchange("26") == bytes.fromhex("0400")
        uid_bcc = self.exchange("9320")
        assert uid_bcc is not None
        assert self.exchange("9370" + uid_bcc.hex()) == b"\x20"
        ats = self.exchange("E080")
        assert ats is not None
        return ats


@pytest.fixture
def chip() -> TestChip:
    return TestChip()


@pytest.fixture
def bridge(chip: TestChip) -> Iterator[NFCUDPBridge]:
    # FSC 32: command chaining is needed
    with NFCUDPBridge(chip, port=0, technology="A", fsci=2) as bridge:
        yield bridge


@pytest.fixture
def radio(bridge: NFCUDPBridge) -> Iterator[Radio]:
    radio = Radio(bridge.port)
    yield radio
    radio.sock.close()


@pytest.fixture
def bridge_b(chip: TestChip) -> Iterator[NFCUDPBridge]:
    with NFCUDPBridge(
        chip, port=0, fsci=2, fwi=9, application_data=bytes.fromhex("00112233")
    ) as bridge:
        yield bridge


@pytest.fixture
def radio_b(bridge_b: NFCUDPBridge) -> Iterator[Radio]:
    radio = Radio(bridge_b.port, b"106B")
    yield radio
    radio.sock.close()


ATQB = bytes.fromhex("50 52434231 00112233 00 21 90")  # PUPI, application data, protocol info
ATTRIB = "1D 52434231 00 08 01 00"  # what nfcpy's Type4BTag sends (FSDI 8, CID 0)


def test_anticollision_and_ats_transcript(radio: Radio, chip: TestChip) -> None:
    assert radio.exchange("26") == bytes.fromhex("0400")  # ATQA
    assert radio.exchange("9320") == bytes.fromhex("08524301 18")  # UID + BCC
    assert radio.exchange("9370 08524301 18") == b"\x20"  # SAK: ISO 14443-4
    ats = radio.exchange("E080")
    assert ats == bytes.fromhex("0C 72 80 B0 00") + b"RGNCARD"  # TL T0 TA TB TC + historical
    assert chip.powered


def test_iblocks_chaining_and_rblocks(radio: Radio, chip: TestChip) -> None:
    radio.activate()
    # a command in two chained I-blocks: R(ACK) for the first part
    assert radio.exchange("12" + SELECT_PLUM[:6].hex()) == b"\xa2"
    response = radio.exchange("03" + SELECT_PLUM[6:].hex())
    assert response is not None and response[0] == 0x03 and response.endswith(b"\x90\x00")
    # R(NAK) with the other block number: presence check, answered by R(ACK)
    assert radio.exchange("B2") == b"\xa3"
    # R(NAK) with the current block number: the last block again
    assert radio.exchange("B3") == response
    # a 256-byte response with FSD 256: two I-blocks, the second after R(ACK)
    first = radio.exchange("02 00B201D400")
    assert first is not None and first[0] == 0x12 and len(first) == 254
    last = radio.exchange("A3")
    assert last is not None and last[0] == 0x03
    assert first[1:] + last[1:] == chip.applications[0].files[0x1A][0] + b"\x90\x00"


def test_deselect_rfoff_and_silence(radio: Radio, chip: TestChip, bridge: NFCUDPBridge) -> None:
    radio.activate()
    assert radio.exchange("C2") == b"\xc2"
    assert not chip.powered
    assert radio.exchange("26") is None  # halted: REQA ignored
    assert radio.exchange("52") == bytes.fromhex("0400")  # WUPA wakes it
    radio.sock.sendto(b"RFOFF", radio.addr)
    time.sleep(0.05)
    radio.sock.sendto(b"106B 050010", radio.addr)  # a type A card ignores type B polls
    with pytest.raises(TimeoutError):
        radio.sock.recv(1024)
    bridge.remove()
    assert radio.exchange("26") is None


def test_slow_chip_gets_waiting_time_extensions(chip: TestChip) -> None:
    class SlowChip(TestChip):
        def transmit(self, apdu: bytes) -> bytes:
            time.sleep(0.08)
            return super().transmit(apdu)

    slow = SlowChip()
    with NFCUDPBridge(slow, port=0, technology="A", fwi=6) as bridge:  # FWT about 19 ms
        clf = nfc.ContactlessFrontend(bridge.path)
        try:
            tag = clf.connect(rdwr={"targets": ["106A"], "on-connect": lambda tag: False})
            assert tag.transceive(bytearray(SELECT_PLUM))[-2:] == b"\x90\x00"
        finally:
            clf.close()


def test_nfcpy_type4tag_talks_to_the_bridge(bridge: NFCUDPBridge, chip: TestChip) -> None:
    clf = nfc.ContactlessFrontend(bridge.path)
    try:
        tag = clf.connect(rdwr={"targets": ["106A"], "on-connect": lambda tag: False})
        assert isinstance(tag, nfc.tag.tt4.Type4ATag)
        assert bytes(tag.identifier) == bytes.fromhex("08524301")
        fci = tag.send_apdu(0x00, 0xA4, 0x04, 0x00, b"1TIC.ICA", mrl=256)
        assert b"1TIC.ICA" in fci
        record = tag.send_apdu(0x00, 0xB2, 0x01, 0x3C, mrl=29)
        assert record == chip.applications[0].files[7][0]
        with pytest.raises(nfc.tag.tt4.Type4TagCommandError) as info:
            tag.send_apdu(0x00, 0xB2, 0x09, 0x3C, mrl=29)
        assert info.value.errno == 0x6A83
        assert tag.is_present
    finally:
        clf.close()


def test_historical_bytes_of_an_atr() -> None:
    assert historical_bytes(TestChip().atr) == b"RGNCARD"
    assert historical_bytes(bytes.fromhex("3B 02 14 50")) == bytes.fromhex("14 50")
    assert historical_bytes(
        bytes.fromhex("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A")
    ) == bytes.fromhex("80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00")


# -- type B --------------------------------------------------------------------------------------


def test_type_b_is_the_default() -> None:
    bridge = NFCUDPBridge(TestChip(), port=0)
    assert bridge.technology == "B" and bridge.brty == b"106B"


def test_type_b_reqb_attrib_transcript(radio_b: Radio, chip: TestChip) -> None:
    assert radio_b.exchange("050000") == ATQB  # REQB, AFI 00 (every card), one slot
    assert radio_b.exchange("050010") == ATQB  # nfcpy's SENSB_REQ: answered again while ready
    assert not chip.powered
    assert radio_b.exchange("1D 01020304 00 08 01 00") is None  # ATTRIB for another PUPI
    assert radio_b.exchange(ATTRIB) == b"\x00"  # MBLI 0, CID 0
    assert chip.powered
    # ISO-DEP as in type A. A command longer than the card's FSC (32, from the ATQB): chained
    # by the reader, R(ACK) from the card
    assert radio_b.exchange("12" + SELECT_PLUM[:6].hex()) == b"\xa2"
    response = radio_b.exchange("03" + SELECT_PLUM[6:].hex())
    assert response is not None and response[0] == 0x03 and response.endswith(b"\x90\x00")
    assert radio_b.exchange("B2") == b"\xa3"  # presence check
    # FSD 256 from ATTRIB: a 256-byte answer in two chained I-blocks
    first = radio_b.exchange("02 00B201D400")
    assert first is not None and first[0] == 0x12 and len(first) == 254
    last = radio_b.exchange("A3")
    assert last is not None and last[0] == 0x03
    assert first[1:] + last[1:] == chip.applications[0].files[0x1A][0] + b"\x90\x00"


def test_type_b_hltb_wupb_afi_and_silence(
    radio_b: Radio, chip: TestChip, bridge_b: NFCUDPBridge
) -> None:
    assert radio_b.exchange("05 20 00") is None  # AFI family 2: not this card's (AFI 00)
    assert radio_b.exchange("05 00 00") == ATQB
    assert radio_b.exchange(ATTRIB) == b"\x00"
    assert radio_b.exchange("50 52434231") == b"\x00"  # HLTB
    assert not chip.powered
    assert radio_b.exchange("05 00 00") is None  # halted: REQB ignored
    assert radio_b.exchange("05 00 08") == ATQB  # WUPB wakes it
    radio_a = Radio(bridge_b.port)  # a type B card ignores type A polls
    assert radio_a.exchange("26") is None
    radio_a.sock.close()
    bridge_b.remove()
    assert radio_b.exchange("05 00 08") is None


def test_type_b_afi_rules() -> None:
    chip = TestChip()
    with NFCUDPBridge(chip, port=0, afi=0x12) as bridge:  # transport family, sub-family 2
        radio = Radio(bridge.port, b"106B")
        try:
            for afi, answered in (("00", True), ("10", True), ("12", True), ("13", False),
                                  ("20", False), ("02", True), ("03", False)):  # fmt: skip
                assert (radio.exchange(f"05 {afi} 08") is not None) is answered, afi
        finally:
            radio.sock.close()


def test_type_b_new_reader_is_a_new_field(bridge_b: NFCUDPBridge, chip: TestChip) -> None:
    first = Radio(bridge_b.port, b"106B")
    second = Radio(bridge_b.port, b"106B")
    try:
        assert first.exchange("050000") == ATQB
        assert first.exchange(ATTRIB) == b"\x00"
        assert second.exchange("050000") == ATQB  # the first reader is gone
        assert not chip.powered
        assert first.exchange("02 00B201D400") is None  # not the activated reader any more
    finally:
        first.sock.close()
        second.sock.close()


def test_nfcpy_type4btag_talks_to_the_bridge(chip: TestChip) -> None:
    """nfcpy's own udp driver senses (SENSB_REQ) and activates (ATTRIB) the type B card."""
    with NFCUDPBridge(chip, port=0) as bridge:
        clf = nfc.ContactlessFrontend(bridge.path)
        try:
            tag = clf.connect(rdwr={"targets": ["106B"], "on-connect": lambda tag: False})
            assert isinstance(tag, nfc.tag.tt4.Type4BTag)
            assert bytes(tag.identifier) == bytes.fromhex("52434231")  # the PUPI
            fci = tag.send_apdu(0x00, 0xA4, 0x04, 0x00, b"1TIC.ICA", mrl=256)
            assert b"1TIC.ICA" in fci
            record = tag.send_apdu(0x00, 0xB2, 0x01, 0x3C, mrl=29)
            assert record == chip.applications[0].files[7][0]
            long_record = tag.send_apdu(0x00, 0xB2, 0x01, 0xD4, mrl=256)
            assert long_record == chip.applications[0].files[0x1A][0]
            with pytest.raises(nfc.tag.tt4.Type4TagCommandError) as info:
                tag.send_apdu(0x00, 0xB2, 0x09, 0x3C, mrl=29)
            assert info.value.errno == 0x6A83
            assert tag.is_present
        finally:
            clf.close()
        assert bridge.apdus == 4


def test_slow_chip_gets_waiting_time_extensions_in_type_b() -> None:
    class SlowChip(TestChip):
        def transmit(self, apdu: bytes) -> bytes:
            time.sleep(0.08)
            return super().transmit(apdu)

    with NFCUDPBridge(SlowChip(), port=0, fwi=6) as bridge:  # FWT about 19 ms
        clf = nfc.ContactlessFrontend(bridge.path)
        try:
            tag = clf.connect(rdwr={"targets": ["106B"], "on-connect": lambda tag: False})
            assert tag.transceive(bytearray(SELECT_PLUM))[-2:] == b"\x90\x00"
        finally:
            clf.close()


def test_bad_type_b_settings_are_refused() -> None:
    with pytest.raises(BridgeError):
        NFCUDPBridge(TestChip(), port=0, technology="F")
    with pytest.raises(BridgeError):
        NFCUDPBridge(TestChip(), port=0, pupi=b"\x01\x02")
