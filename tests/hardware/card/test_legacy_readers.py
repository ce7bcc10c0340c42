"""Legacy field readers: class 94, selection by file identifier from the MF, current-EF reads,
and the per-contract counter files 202A-202D they look for."""

from __future__ import annotations

import pytest
from cardkit import SERIAL, Terminal, sw

from card_schema.crypto import KeyRole
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


# -- per-contract counter files 202A-202D: counters 1-4 of the common counter file 2069 ----------


def test_per_contract_counter_files_read_the_common_counters(card: EmulatedCard) -> None:
    """Lille-network field readers read 202A-202D; the image holds only 2069 (5, 16, 0...)."""
    assert sw(card.transmit(bytes.fromhex("00A4040008") + b"1TIC.ICA" + b"\x00")) == 0x9000
    for sfi, value in ((0x0A, 5), (0x0B, 16), (0x0C, 0), (0x0D, 0)):
        read = card.transmit(bytes([0x00, 0xB2, 0x01, sfi << 3 | 4, 0x03]))
        assert read == value.to_bytes(3, "big") + b"\x90\x00", hex(sfi)
    assert sw(card.transmit(bytes.fromhex("00B2025403"))) == 0x6A83  # one record only
    assert sw(card.transmit(bytes.fromhex("00B2017403"))) == 0x6A82  # SFI 0E: no such file


def test_per_contract_counter_file_selected_by_identifier(card: EmulatedCard) -> None:
    assert sw(card.transmit(bytes.fromhex("94A4000002200000"))) == 0x9000  # DF 2000
    answer = card.transmit(bytes.fromhex("94A4000002202B00"))
    assert sw(answer) == 0x9000 and answer[:2] == b"\x85\x17"
    info = answer[2:-2]
    # SFI 0B, EF, simulated counters (type 8), one 3-byte record; counters file SFI 19, counter 2
    assert info[:5] == bytes([0x0B, 0x04, 0x08, 0x03, 0x01])
    assert info[14:16] == bytes([0x19, 0x02])
    assert card.transmit(bytes.fromhex("94B2010403")) == bytes.fromhex("000010") + b"\x90\x00"


def test_one_counter_through_two_files(terminal: Terminal, card: EmulatedCard) -> None:
    """A decrease of counter 1 in 2069 shows in 202A; 202A itself cannot be modified."""
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    assert sw(terminal.send(bytes.fromhex("003001C80300000203"))) == 0x9000  # 2069 counter 1 -2
    assert sw(terminal.send(bytes.fromhex("003001500300000103"))) == 0x6985  # via 202A: refused
    assert terminal.close()[-2:] == b"\x90\x00"
    assert card.transmit(bytes.fromhex("00B2015403")) == bytes.fromhex("000003") + b"\x90\x00"
    assert card.transmit(bytes.fromhex("00B201CC00"))[:3] == bytes.fromhex("000003")  # 2069


@pytest.mark.parametrize(("lid", "sfi"), [(0x0002, 0x02), (0x0003, 0x03)])
def test_icc_and_id_files_are_selectable_from_an_application(
    card: EmulatedCard, lid: int, sfi: int
) -> None:
    """Legacy field readers select ICC 0002 and ID 0003 while the PLUM DF is current."""
    assert sw(card.transmit(bytes.fromhex("94A4040008315449432E49434100"))) == 0x9000
    answer = card.transmit(bytes.fromhex("94A4000002") + lid.to_bytes(2, "big") + b"\x00")
    assert sw(answer) == 0x9000 and answer[:2] == b"\x85\x17"
    info = answer[2:25]
    assert info[0] == sfi and info[1] == 0x04  # an EF
    assert info[21:23] == lid.to_bytes(2, "big")  # its own LID
    assert card.transmit(bytes.fromhex("94B2010400"))[:8] == SERIAL  # the current EF
    # The application is still current: its files answer by SFI.
    assert card.transmit(bytes.fromhex("94B2013C00"))[:2] == b"\x25\x01"


def test_every_select_answer_carries_its_own_lid(card: EmulatedCard) -> None:
    card.transmit(bytes.fromhex("00A4040C08315449432E494341"))
    for lid in (0x2001, 0x2010, 0x2020, 0x2069, 0x2050):
        answer = card.transmit(bytes.fromhex("00A4000002") + lid.to_bytes(2, "big") + b"\x00")
        assert sw(answer) == 0x9000 and answer[2 + 21 : 2 + 23] == lid.to_bytes(2, "big")
    mf = card.transmit(bytes.fromhex("00A40000023F0000"))
    assert mf[2 + 1] == 0x01 and mf[2 + 21 : 2 + 23] == b"\x3f\x00"


def test_counters_answer_exactly_the_le_asked(card: EmulatedCard) -> None:
    """Read Record of the counters file with Le = 3 * n answers the first n counters."""
    card.transmit(bytes.fromhex("00A4040C08315449432E494341"))
    assert card.transmit(bytes.fromhex("00B201CC03")) == bytes.fromhex("0000059000")
    assert card.transmit(bytes.fromhex("00B201CC06")) == bytes.fromhex("0000050000109000")
    assert len(card.transmit(bytes.fromhex("00B201CC1B"))) == 27 + 2  # 9 counters
    assert card.transmit(bytes.fromhex("00B201CC1E")) == b"\x6c\x1d"  # beyond the record
    assert len(card.transmit(bytes.fromhex("00B201CC00"))) == 29 + 2
