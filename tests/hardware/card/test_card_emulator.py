"""Card commands outside secure sessions: selection, FCI, Get Data, reads, refusals, bad input."""

from __future__ import annotations

import pytest
from cardkit import SERIAL, Terminal, sw

from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore


def test_power_on_answers_a_calypso_atr(store: CardImageStore) -> None:
    card = EmulatedCard(store)
    atr = card.power_on()
    # 3B 8F 80 01, historical bytes 80 5A || startup info without the buffer index (6) ||
    # low 4 bytes of the serial || 82 90 00, then TCK (the XOR of T0 onwards).
    assert atr[:6] == bytes.fromhex("3B8F8001805A")
    assert atr[12:16] == SERIAL[-4:]
    assert atr[16:19] == bytes.fromhex("829000")
    tck = 0
    for byte in atr[1:-1]:
        tck ^= byte
    assert atr[-1] == tck and len(atr) == 20
    startup = atr[6:12]
    assert startup[2] not in (0x00, 0xFF)  # application subtype
    assert startup[1] & 0x08  # Rev 3.2 mode declared
    assert EmulatedCard(store, rev32_mode=False).power_on()[7] & 0x08 == 0
    card.power_off()
    assert card.transmit(bytes.fromhex("00A4040008315449432E49434100"))[-2:] == b"\x69\x85"


@pytest.mark.parametrize("df_name", [b"1TIC.ICA", b"3MTR.ICA"])
def test_plum_answers_both_df_names(terminal: Terminal, df_name: bytes) -> None:
    response = terminal.select(df_name)
    assert sw(response) == 0x9000
    assert response[:2] == b"\x6f\x22" and df_name in response
    assert b"\xc7\x08" + SERIAL in response


def test_select_without_fci_and_unknown(terminal: Terminal, card: EmulatedCard) -> None:
    assert card.transmit(bytes.fromhex("00A4040C0A4844462E57414C4C4554")) == b"\x90\x00"
    assert sw(terminal.select(b"NOPE")) == 0x6A82
    assert sw(card.transmit(bytes.fromhex("00A4040108315449432E494341"))) == 0x6B00
    assert sw(card.transmit(bytes.fromhex("00A4070002200000"))) == 0x6B00


def test_get_data(terminal: Terminal, card: EmulatedCard) -> None:
    assert sw(card.transmit(bytes.fromhex("00CA006F00"))) == 0x6A88  # no application yet
    terminal.select(b"HDF.CURSUS")
    fci = card.transmit(bytes.fromhex("00CA006F00"))
    assert sw(fci) == 0x9000 and b"HDF.CURSUS" in fci
    trace = card.transmit(bytes.fromhex("00CA018500"))
    assert trace[:-2] == b"\xc7\x08" + SERIAL + b"\xff\xff\xff"
    assert sw(card.transmit(bytes.fromhex("00CA9F7F00"))) == 0x6A88


def test_read_record_by_sfi_one_and_several(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    one = card.transmit(bytes.fromhex("00B2024C00"))  # contracts (SFI 09), record 2
    assert one == b"C2".ljust(29, b"\x00") + b"\x90\x00"
    several = card.transmit(bytes.fromhex("00B2034D00"))  # records 3 to last
    assert several[:-2] == (
        b"\x03\x1d" + b"C3".ljust(29, b"\x00") + b"\x04\x1d" + b"C4".ljust(29, b"\x00")
    )
    fits_one = card.transmit(bytes.fromhex("00B2014D20"))  # Le 32: room for one record only
    assert fits_one[:2] == b"\x01\x1d" and len(fits_one) == 31 + 2
    assert sw(card.transmit(bytes.fromhex("00B2014D10"))) == 0x6C1F
    assert sw(card.transmit(bytes.fromhex("00B2014C10"))) == 0x6C1D
    assert sw(card.transmit(bytes.fromhex("00B2054C00"))) == 0x6A83
    assert sw(card.transmit(bytes.fromhex("00B2014800"))) == 0x6B00  # P2 mode 0
    assert sw(card.transmit(bytes.fromhex("00B201FC00"))) == 0x6A82  # SFI 1F absent
    assert sw(card.transmit(bytes.fromhex("00B2010400"))) == 0x9000  # current EF is now set


def test_read_with_no_current_ef(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    assert sw(card.transmit(bytes.fromhex("00B2010400"))) == 0x6986
    assert sw(card.transmit(bytes.fromhex("00B2010400"))) == 0x6986


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        ("00DC014C0141", 0x6982),  # Update Record
        ("00D2014C0141", 0x6982),  # Write Record
        ("00E200400141", 0x6982),  # Append Record
        ("003201C803000001", 0x6982),  # Increase
        ("003001C803000001", 0x6982),  # Decrease
        ("0004000000", 0x6982),  # Invalidate
        ("0044000000", 0x6982),  # Rehabilitate
    ],
)
def test_modifications_outside_a_session_are_6982(
    terminal: Terminal, card: EmulatedCard, apdu: str, status: int
) -> None:
    terminal.select(b"1TIC.ICA")
    before = card.image
    assert sw(card.transmit(bytes.fromhex(apdu))) == status
    assert card.image == before


def test_close_without_session_is_6985(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    assert sw(card.transmit(bytes.fromhex("008E8000081122334455667788"))) == 0x6985


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        ("80A4040008315449432E494341", 0x6E00),  # wrong class
        ("00FF000000", 0x6D00),  # unknown instruction
        ("00A4", 0x6700),  # truncated
        ("00A40400", 0x6700),  # select by name without a name
        ("00A4040003AABB", 0x6700),  # Lc larger than the data
        ("00A404000000081122", 0x6700),  # extended length
        ("00A4040011" + "41" * 17, 0x6700),  # DF name longer than 16
        ("00B2014C0311223300", 0x6700),  # read record with data
    ],
)
def test_bad_input_gets_iso_status_words(card: EmulatedCard, apdu: str, status: int) -> None:
    assert card.transmit(bytes.fromhex(apdu)) == status.to_bytes(2, "big")
