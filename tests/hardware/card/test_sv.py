"""Stored value: SV Get, Reload, Debit, Undebit with the SAM's MACs, balance limits, SV logs."""

from __future__ import annotations

import pytest
from cardkit import Terminal, sw

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard

SV_GET_RELOAD = bytes.fromhex("007C000700")
SV_GET_DEBIT = bytes.fromhex("007C000900")
PREPARE = {0xB8: 0x56, 0xBA: 0x54, 0xBC: 0x5C}  # card SV INS -> SAM SV Prepare INS


def body(amount: int, *, signed: bool = False) -> bytes:
    """amount (3) || date (2) || time (2) || location (4)."""
    return amount.to_bytes(3, "big", signed=signed) + b"\x2a\x01" + b"\x04\xb0" + b"GARE"


def sv_operation(terminal: Terminal, ins: int, sv_get: bytes, op_body: bytes) -> bytes:
    """SV Get, SV Prepare in the SAM, the SV command; returns the card's response."""
    state = terminal.send(sv_get)
    assert sw(state) == 0x9000
    mac = terminal.sam_ok(bytes([0x80, PREPARE[ins], 0, 0, 16]) + state[:5] + op_body)
    return terminal.send(bytes([0x00, ins, 0, 0, 19]) + op_body + mac + b"\x00")


def balance(card: EmulatedCard) -> int:
    assert card.image is not None
    return card.image.applications["wallet"].sv_balance


def test_sv_get_outside_a_session(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"HDF.WALLET")
    response = card.transmit(SV_GET_DEBIT)
    assert sw(response) == 0x9000 and len(response) == 2 + 3 + 29 + 2
    assert response[:5] == b"\x00\x00\x00\x03\xe8"  # tnum 0, balance 1000 cents
    assert sw(card.transmit(bytes.fromhex("007C000800"))) == 0x6B00
    terminal.select(b"1TIC.ICA")
    assert sw(card.transmit(SV_GET_DEBIT)) == 0x6985  # no purse in PLUM


def test_reload_then_debit_then_undebit(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(KeyRole.LOAD)
    signature = sv_operation(terminal, 0xB8, SV_GET_RELOAD, body(2500, signed=True))
    assert sw(signature) == 0x9000
    terminal.sam_ok(b"\x80\x58\x00\x00\x08" + signature[:8])  # SV Check
    assert sw(terminal.close()) == 0x9000
    assert balance(card) == 3500
    assert card.image is not None
    load_log = card.image.applications["wallet"].records["sv_load_log"][0]
    assert load_log[4:7] == (2500).to_bytes(3, "big") and load_log[7:10] == (3500).to_bytes(
        3, "big"
    )

    terminal.open_session(KeyRole.DEBIT)
    assert sw(sv_operation(terminal, 0xBA, SV_GET_DEBIT, body(150))) == 0x9000
    assert sw(sv_operation(terminal, 0xBC, SV_GET_DEBIT, body(150))) == 0x9000
    assert sw(sv_operation(terminal, 0xBA, SV_GET_DEBIT, body(200))) == 0x9000
    assert sw(terminal.close()) == 0x9000
    assert balance(card) == 3300
    debit_log = card.image.applications["wallet"].records["sv_debit_log"]
    amounts = [int.from_bytes(r[4:7], "big", signed=True) for r in debit_log]
    assert amounts == [200, -150, 150]
    assert card.image.applications["wallet"].sv_tnum == 4


@pytest.mark.parametrize(
    ("role", "ins", "op_body", "status"),
    [
        (KeyRole.DEBIT, 0xBA, body(1001), 0x6A80),  # more than the balance
        (KeyRole.DEBIT, 0xB8, body(100), 0x6982),  # reload needs the load key
        (KeyRole.LOAD, 0xBA, body(100), 0x9000),  # load key grants debit level
        (KeyRole.LOAD, 0xB8, body(-1001, signed=True), 0x6A80),  # negative reload under zero
    ],
)
def test_sv_refusals(
    terminal: Terminal, card: EmulatedCard, role: KeyRole, ins: int, op_body: bytes, status: int
) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(role)
    assert sw(sv_operation(terminal, ins, SV_GET_DEBIT, op_body)) == status
    assert sw(terminal.close()) == 0x9000
    if status != 0x9000:
        assert balance(card) == 1000


def test_sv_needs_a_session_an_sv_get_and_a_good_mac(
    terminal: Terminal, card: EmulatedCard
) -> None:
    terminal.select(b"HDF.WALLET")
    debit = bytes([0x00, 0xBA, 0, 0, 19]) + body(100) + bytes(8)
    assert sw(card.transmit(debit)) == 0x6982
    terminal.open_session(KeyRole.DEBIT)
    assert sw(terminal.send(debit)) == 0x6985  # no SV Get in this session yet
    terminal.send(SV_GET_DEBIT)
    assert sw(terminal.send(debit)) == 0x6988  # MAC of zeros
    assert sw(terminal.send(bytes([0x00, 0xBA, 0, 0, 11]) + body(100))) == 0x6700
    # a MAC prepared for one operation does not fit another amount
    state = terminal.send(SV_GET_DEBIT)
    mac = terminal.sam_ok(bytes([0x80, 0x54, 0, 0, 16]) + state[:5] + body(100))
    assert sw(terminal.send(bytes([0x00, 0xBA, 0, 0, 19]) + body(900) + mac)) == 0x6988
    assert sw(terminal.close()) == 0x9000
    assert balance(card) == 1000


def test_sam_detects_a_forged_card_sv_signature(terminal: Terminal) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(KeyRole.DEBIT)
    response = sv_operation(terminal, 0xBA, SV_GET_DEBIT, body(100))
    forged = bytes([response[0] ^ 0xFF]) + response[1:8]
    assert terminal.sam.transmit(b"\x80\x58\x00\x00\x08" + forged) == b"\x69\x88"


def test_sam_refuses_to_prepare_an_impossible_balance(terminal: Terminal) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(KeyRole.LOAD)
    state = terminal.send(SV_GET_RELOAD)
    prepare = bytes([0x80, 0x56, 0, 0, 16]) + state[:5] + body(0x7FFFFF, signed=True)
    assert terminal.sam.transmit(prepare) == b"\x6a\x80"
