"""SAM Digest Update Multiple (``80 8C 80 00``): several digest elements in one APDU."""

from __future__ import annotations

import pytest
from samkit import CARD_SERIAL, OK, SAM_SERIAL, apdu, counting_random, key_file_store, ok

from card_schema.crypto import KeyRole
from hardware.sam.emulator import EmulatedSAM
from terminal.engine.sam import SAMResource
from terminal.engine.stats import APDUCounter

# Regular-mode open answer: counter (3) || random (1) || ratified || KIF || KVC || no record.
OPEN = b"\xff\xff\xff\x07\x00" + bytes([KeyRole.DEBIT.kif, 1, 0])
ELEMENTS = (
    bytes.fromhex("003001c80300000100"),  # Decrease counter 1 by 1
    bytes.fromhex("0000049000"),  # its answer
    bytes.fromhex("00e2004803") + b"EVT",  # Append Record
    OK,
)


def multiple(*elements: bytes) -> bytes:
    return apdu(0x8C, b"".join(bytes([len(e)]) + e for e in elements), p1=0x80)


def opened_sam() -> EmulatedSAM:
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL, random=counting_random())
    sam.power_on()
    ok(sam, apdu(0x84, le=4))
    ok(sam, apdu(0x14, CARD_SERIAL))
    ok(sam, apdu(0x8A, bytes([KeyRole.DEBIT.kif, 1]) + OPEN, p2=0xFF))
    return sam


def signature_one_by_one(elements: tuple[bytes, ...]) -> bytes:
    sam = opened_sam()
    for element in elements:
        ok(sam, apdu(0x8C, element))
    return ok(sam, apdu(0x8E, le=4))


def test_multiple_gives_the_same_digest_as_one_by_one() -> None:
    sam = opened_sam()
    ok(sam, multiple(*ELEMENTS))
    assert ok(sam, apdu(0x8E, le=4)) == signature_one_by_one(ELEMENTS)


def test_multiple_and_single_updates_mix_in_order() -> None:
    sam = opened_sam()
    ok(sam, apdu(0x8C, ELEMENTS[0]))
    ok(sam, multiple(*ELEMENTS[1:3]))
    ok(sam, apdu(0x8C, ELEMENTS[3]))
    assert ok(sam, apdu(0x8E, le=4)) == signature_one_by_one(ELEMENTS)


def test_order_matters() -> None:
    sam = opened_sam()
    ok(sam, multiple(*reversed(ELEMENTS)))
    assert ok(sam, apdu(0x8E, le=4)) != signature_one_by_one(ELEMENTS)


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (apdu(0x8C, b"\x03abc\x00", p1=0x80), 0x6A80),  # zero length
        (apdu(0x8C, b"\x03abc\x05ab", p1=0x80), 0x6A80),  # runs past the end
        (apdu(0x8C, b"\x03abc", p1=0x81), 0x6B00),
        (apdu(0x8C, b"\x03abc", p1=0x80, p2=0x01), 0x6B00),
        (apdu(0x8C, p1=0x80), 0x6700),
    ],
)
def test_malformed_multiple_is_refused_and_digests_nothing(command: bytes, status: int) -> None:
    sam = opened_sam()
    assert sam.transmit(command) == status.to_bytes(2, "big")
    ok(sam, multiple(*ELEMENTS))
    assert ok(sam, apdu(0x8E, le=4)) == signature_one_by_one(ELEMENTS)


def test_multiple_needs_a_digest_in_progress() -> None:
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL, random=counting_random())
    sam.power_on()
    assert sam.transmit(multiple(b"a", b"b")) == b"\x69\x85"


class _SAMReader:
    """Just enough of a reader for :class:`SAMResource` over an emulated SAM."""

    def __init__(self, sam: EmulatedSAM) -> None:
        self.sam = sam
        self.connected = True
        self.atr = sam.atr

    def connect(self) -> bytes:
        return self.sam.atr

    def transmit(self, command: bytes) -> bytes:
        return self.sam.transmit(command)


def test_engine_packs_elements_within_255_bytes() -> None:
    """Elements go in as few APDUs as the 255-byte limit allows, and digest as one by one."""
    elements = (*ELEMENTS, bytes(200), b"\x90\x00", bytes(60), bytes(255))
    sam = opened_sam()
    counter = APDUCounter()
    resource = SAMResource(_SAMReader(sam), counter)  # type: ignore[arg-type]
    resource.digest_elements(elements)
    # The 4 small elements, the 200 bytes and 90 00 fit one APDU (28 + 201 + 3 = 232 bytes);
    # 60 more would not (293): they go alone, then the 255-byte element (too long for a length
    # prefix) in a plain Digest Update.
    assert counter.sam_commands == [
        "Digest Update Multiple",
        "Digest Update",
        "Digest Update",
    ]
    assert ok(sam, apdu(0x8E, le=4)) == signature_one_by_one(elements)
