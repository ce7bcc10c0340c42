"""Bad frames through the real pcscd: the card answers the reference's status words, and random
or mutated APDUs are every one answered while the card image stays unchanged.

The card is the emulated card behind the vpcd bridge of a private pcscd (``pcsc_stack``), driven
by :class:`firmware_host.readers.pcsc.PCSCReader` as a terminal drives it. Status words are
those Eclipse Keyple's command classes list for each case (``6700`` wrong length, ``6B00``
wrong P1/P2, ``6A82`` file not found, ``6982`` security status, ``6985`` conditions of use,
``6D00`` instruction, ``6E00`` class). Mutations start from well-formed Calypso frames of both
session modes. APDUs are at least 4 bytes long: the reader refuses shorter ones itself, and
1-byte messages on the vpcd link are another issue (hardware/bridges/vpcd.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cardkit import personalised_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_host.readers.pcsc import PCSCReader
from hardware.bridges.vpcd import VPCDBridge
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore

pytestmark = pytest.mark.integration

SELECT_PLUM = bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00"

# Well-formed Calypso frames the mutations start from.
VALID_FRAMES = [
    SELECT_PLUM,
    bytes.fromhex("00A4040008") + b"HDF.WALLET"[:8] + b"\x00",
    bytes.fromhex("00A40000023F0000"),
    bytes.fromhex("00A4000002000200"),
    bytes.fromhex("00B2013C00"),  # Read Record, environment
    bytes.fromhex("00B2014500"),  # Read Records, events
    bytes.fromhex("00B201CC03"),  # Read counter 1 (Le 3)
    bytes.fromhex("00CA018500"),  # Get Data traceability
    bytes.fromhex("008A0B3904010203040" + "0"),  # Open, regular, reading record 1 of SFI 07
    bytes.fromhex("008A0B3A090001020304050607080" + "0"),  # Open, extended
    bytes.fromhex("008E0000040102030400"),  # Close, regular signature
    bytes.fromhex("008E0000080102030405060708" + "00"),  # Close, extended signature
    bytes.fromhex("008E000000"),  # abort
    bytes.fromhex("003001C80300000100"),  # Decrease
    bytes.fromhex("00E200400341424300"),  # Append Record
    bytes.fromhex("00DC014C0141"),  # Update Record
    bytes.fromhex("007C000900"),  # SV Get
    bytes.fromhex("00B2000000"),  # ratification
]


@pytest.fixture(scope="module")
def pcsc_card(pcsc_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The emulated card behind pcscd; yields (reader, store)."""
    store = CardImageStore(Path(tmp_path_factory.mktemp("pcsc-fuzz")) / "card.json")
    store.commit(personalised_image())
    card = EmulatedCard(store)
    with VPCDBridge(card, pcsc_stack.card_port, name="card") as bridge:
        assert bridge.wait_connected(5)
        assert pcsc_stack.wait_for_card_state(pcsc_stack.card_reader, True, 5)
        reader = PCSCReader(pcsc_stack.card_reader)
        reader.connect()
        try:
            yield reader, store
        finally:
            reader.close()


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


@pytest.mark.parametrize(
    ("apdus", "status"),
    [
        ([bytes.fromhex("00A4040008") + b"1TIC"], 0x6700),  # Lc says 8, 4 bytes follow
        ([SELECT_PLUM, bytes.fromhex("008A030103010203")], 0x6700),  # 3-byte challenge
        ([SELECT_PLUM, bytes.fromhex("008A0301040102030400"), bytes.fromhex("008E000008")
          + bytes(8) + b"\x00"], 0x6700),  # an 8-byte signature closing a regular session
        ([bytes.fromhex("00A4070002200000")], 0x6B00),
        ([SELECT_PLUM, bytes.fromhex("008A0401040102030400")], 0x6B00),  # key index 4
        ([bytes.fromhex("00A4040004") + b"NOPE" + b"\x00"], 0x6A82),
        ([SELECT_PLUM, bytes.fromhex("00B2017C00")], 0x6A82),  # no SFI 0F in PLUM
        ([SELECT_PLUM, bytes.fromhex("00DC014C0141")], 0x6982),  # update outside a session
        ([SELECT_PLUM, bytes.fromhex("008E0000040102030400")], 0x6985),  # no session to close
        ([bytes.fromhex("00FE000000")], 0x6D00),
        ([bytes.fromhex("80B2013C00")], 0x6E00),
    ],
)  # fmt: skip
def test_bad_frames_get_the_reference_status_words(
    pcsc_card: Any, apdus: list[bytes], status: int
) -> None:
    reader, store = pcsc_card
    before = store.load()
    for apdu in apdus[:-1]:
        assert sw(reader.transmit(apdu)) == 0x9000
    assert sw(reader.transmit(apdus[-1])) == status
    reader.transmit(SELECT_PLUM)  # leaves any session: nothing of it is committed
    assert store.load() == before


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with one mutation: a byte changed, cut short, grown, or Lc/Le altered."""
    frame = bytearray(draw(st.sampled_from(VALID_FRAMES)))
    how = draw(st.sampled_from(["byte", "cut", "grow", "length"]))
    if how == "byte":
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    elif how == "cut":
        frame = frame[: draw(st.integers(4, len(frame)))]
    elif how == "grow":
        frame += draw(st.binary(min_size=1, max_size=16))
    elif len(frame) > 4:
        frame[4] = draw(st.integers(0, 255))
    return bytes(frame)


any_apdu = st.one_of(mutated_frames(), st.binary(min_size=4, max_size=255))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(any_apdu, min_size=1, max_size=10))
def test_random_and_mutated_apdus_through_pcscd(pcsc_card: Any, apdus: list[bytes]) -> None:
    reader, store = pcsc_card
    before = store.load()
    reader.transmit(SELECT_PLUM)
    for apdu in apdus:
        response = reader.transmit(apdu)
        assert len(response) >= 2
        assert response[-2] in (0x90, 0x62, 0x63, 0x64, 0x65, 0x67, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)
    reader.transmit(SELECT_PLUM)  # whatever session was opened is dropped
    assert store.load() == before
