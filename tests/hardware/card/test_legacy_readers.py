"""Legacy field readers: class 94, selection by file identifier from the MF, current-EF reads."""

from __future__ import annotations

import pytest
from cardkit import SERIAL, sw

from hardware.card.emulator import EmulatedCard


@pytest.mark.parametrize("cla", [0x00, 0x94])
def test_select_df_then_ef_by_file_identifier(card: EmulatedCard, cla: int) -> None:
    def send(hex_apdu: str) -> bytes:
        return card.transmit(bytes([cla]) + bytes.fromhex(hex_apdu))

    assert sw(send("A40000023F00")) == 0x9000
    df = send("A4000002200000")
    assert sw(df) == 0x9000 and df.startswith(b"\x6f") and b"1TIC.ICA" in df
    ef = send("A4000002200100")
    assert sw(ef) == 0x9000 and ef[:2] == b"\x85\x17" and ef[2] == 0x07  # SFI of 2001
    environment = send("B2010400")
    assert environment == b"\x25\x01ENV".ljust(29, b"\x00") + b"\x90\x00"
    assert sw(send("A4000002201000")) == 0x9000  # event log
    events = send("B2010500")  # all records from 1, each number || length || data
    assert events[:-2] == b"".join(
        bytes([n, 29]) + e.ljust(29, b"\x00") for n, e in enumerate([b"E1", b"E2", b"E3"], 1)
    )
    assert sw(send("B2040400")) == 0x6A83


def test_select_by_path_and_from_the_df(card: EmulatedCard) -> None:
    assert sw(card.transmit(bytes.fromhex("94A40800042000200C00"))) == 0x6A82  # no EF 200C
    assert card.transmit(bytes.fromhex("94A4080C0420002020")) == b"\x90\x00"
    assert card.transmit(bytes.fromhex("94B2020400"))[:2] == b"C2"
    assert card.transmit(bytes.fromhex("94A4090C022050")) == b"\x90\x00"  # contract list
    assert sw(card.transmit(bytes.fromhex("94B2010400"))) == 0x9000
    assert card.transmit(bytes.fromhex("94A4080C063F0030003001")) == b"\x90\x00"  # wallet


def test_ef_of_another_df_is_not_found_from_the_mf(card: EmulatedCard) -> None:
    assert sw(card.transmit(bytes.fromhex("94A40000023F00"))) == 0x9000
    assert sw(card.transmit(bytes.fromhex("94A40000022001"))) == 0x6A82


def test_icc_file_under_the_mf_gives_the_serial(card: EmulatedCard) -> None:
    assert sw(card.transmit(bytes.fromhex("94A40000023F00"))) == 0x9000
    assert sw(card.transmit(bytes.fromhex("94A40000020002"))) == 0x9000
    assert card.transmit(bytes.fromhex("94B2010400"))[:8] == SERIAL
    assert card.transmit(bytes.fromhex("94B2011400"))[:8] == SERIAL  # by its SFI 02


def test_legacy_class_in_a_secure_session(card: EmulatedCard) -> None:
    card.transmit(bytes.fromhex("94A4000002200000"))
    assert sw(card.transmit(bytes.fromhex("948A03010401020304"))) == 0x9000
    assert card.in_session
    assert card.transmit(bytes.fromhex("948E000000")) == b"\x90\x00"
    assert not card.in_session
