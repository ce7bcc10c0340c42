"""Stored value in Calypso frames, regular and Rev 3.2 extended: SV Get, SV Prepare in the SAM,
SV Reload / Debit / Undebit, the SV signatures postponed to the close and SV Check, the logs.

Frames and layouts as Eclipse Keyple builds and parses them (``CommandSvGet``,
``CommandSvReload``, ``CommandSvDebitOrUndebit``, ``CommandCloseSecureSession``; legacy SAM
``CommandSvPrepareLoad``, ``CommandSvPrepareDebitOrUndebit``, ``CommandSvCheck``), written out
by hand here.
"""

from __future__ import annotations

import pytest
from cardkit import SAM_SERIAL, Terminal, sw

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard

PREPARE = {0xB8: 0x56, 0xBA: 0x54, 0xBC: 0x5C}  # card SV INS -> SAM SV Prepare INS
DATE, TIME = b"\x2a\x01", b"\x04\xb0"


def sv_get(terminal: Terminal, *, debit: bool) -> tuple[bytes, bytes]:
    """SV Get in the terminal's mode: (header INS P1 P2 Le, the whole answer with SW)."""
    p2 = 0x09 if debit else 0x07
    if terminal.extended:
        header = bytes([0x7C, 0x01, p2, 0x3D])
    else:
        header = bytes([0x7C, 0x00, p2, 0x1E if debit else 0x21])
    answer = terminal.send(b"\x00" + header)
    assert sw(answer) == 0x9000 and len(answer) == header[3] + 2
    return header, answer


def partial(terminal: Terminal, ins: int, amount: int, kvc: int) -> bytes:
    """The SV command without its SAM fields, as SV Prepare takes it."""
    mac = 10 if terminal.extended else 5
    if ins == 0xB8:
        data = (
            b"\x00"
            + DATE
            + b"\x00"
            + bytes([kvc])
            + b"\x00"
            + amount.to_bytes(3, "big", signed=True)
            + TIME
        )
        return bytes([ins, 0, 0, 18 + mac]) + data
    value = -amount if ins == 0xBA else amount
    data = b"\x00" + value.to_bytes(2, "big", signed=True) + DATE + TIME + bytes([kvc])
    return bytes([ins, 0, 0, 15 + mac]) + data  # fmt: skip


def sv_operation(terminal: Terminal, ins: int, amount: int, *, tamper: bool = False) -> bytes:
    """SV Get, SV Prepare in the SAM, the SV command (case 3 in a session); the card's answer."""
    header, answer = sv_get(terminal, debit=ins != 0xB8)
    kvc = answer[8] if terminal.extended else answer[0]
    part = partial(terminal, ins, amount, kvc)
    data = header + answer + part
    prepared = terminal.sam_ok(bytes([0x80, PREPARE[ins], 0x01, 0xFF, len(data)]) + data)
    challenge, sam_tnum, mac = prepared[:3], prepared[3:6], prepared[6:]
    assert len(mac) == (10 if terminal.extended else 5)
    body = bytes([challenge[2]]) + part[5:] + SAM_SERIAL + sam_tnum + mac
    if tamper:
        body = body[:-1] + bytes([body[-1] ^ 1])
    return terminal.send(bytes([0x00, ins, challenge[0], challenge[1], len(body)]) + body)


def close_with_sv(terminal: Terminal, operations: int) -> list[bytes]:
    """Close; the answer's postponed data (length counting itself || SV signature) come first.
    SV Check in the SAM for each, after Digest Authenticate. Returns the SV signatures."""
    response = terminal.close()
    assert sw(response) == 0x9000
    data, signatures = response[:-2], []
    sig = 6 if terminal.extended else 3
    for _ in range(operations):
        assert data[0] == 1 + sig
        signatures.append(data[1 : 1 + sig])
        data = data[1 + sig :]
    assert len(data) == terminal.signature_size
    for signature in signatures:
        terminal.sam_ok(bytes([0x80, 0x58, 0x00, 0x00, sig]) + signature)
    return signatures


def purse(card: EmulatedCard) -> tuple[int, int]:
    assert card.image is not None
    wallet = card.image.applications["wallet"]
    return wallet.sv_balance, wallet.sv_tnum


def test_sv_get_layouts(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"HDF.WALLET")
    for debit in (True, False):
        _, answer = sv_get(terminal, debit=debit)
        data = answer[:-2]
        if terminal.extended:  # 8 || KVC || tnum || sig (6) || balance || load (22) || debit (19)
            assert data[8] == 1 and data[9:11] == b"\x00\x00" and data[17:20] == b"\x00\x03\xe8"
        else:  # KVC || tnum || previous signature (5) || balance || log (22 load / 19 debit)
            assert data[0] == 1 and data[1:3] == b"\x00\x00" and data[8:11] == b"\x00\x03\xe8"
            assert len(data) == (0x1E if debit else 0x21)
    assert sw(card.transmit(bytes.fromhex("007C000800"))) == 0x6A81  # P2 is 07 or 09
    assert sw(card.transmit(bytes.fromhex("007C00071E"))) == 0x6A86  # Le of P2 09
    terminal.select(b"1TIC.ICA")
    assert sw(card.transmit(bytes.fromhex("007C00091E"))) == 0x6D00  # no purse in PLUM


def test_reload_then_debit_then_undebit(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(KeyRole.LOAD)
    assert sv_operation(terminal, 0xB8, 2500) == b"\x90\x00"  # in session: no data
    close_with_sv(terminal, 1)
    assert purse(card) == (3500, 1)
    assert card.image is not None
    load_log = card.image.applications["wallet"].records["sv_load_log"][0]
    # Keyple SvLoadLogRecord: date 0, KVC 3, balance 5, amount 8, time 11, SAM id 13,
    # SAM tnum 17, SV tnum 20; then zeros to 29
    assert load_log[0:2] == DATE and load_log[3] == 1
    assert load_log[5:8] == (3500).to_bytes(3, "big") and load_log[8:11] == (2500).to_bytes(
        3, "big"
    )
    assert load_log[11:13] == TIME and load_log[13:17] == SAM_SERIAL
    assert load_log[20:22] == b"\x00\x01" and load_log[22:] == bytes(7)

    terminal.open_session(KeyRole.DEBIT)
    assert sv_operation(terminal, 0xBA, 150) == b"\x90\x00"
    assert sv_operation(terminal, 0xBC, 150) == b"\x90\x00"
    assert sv_operation(terminal, 0xBA, 200) == b"\x90\x00"
    close_with_sv(terminal, 3)
    assert purse(card) == (3300, 4)
    debit_log = card.image.applications["wallet"].records["sv_debit_log"]
    # Keyple SvDebitLogRecord: amount 0 (the command's: negative for a debit), date 2, time 4,
    # KVC 6, SAM id 7, SAM tnum 11, balance 14, SV tnum 17
    amounts = [int.from_bytes(r[0:2], "big", signed=True) for r in debit_log]
    assert amounts == [-200, 150, -150]
    assert [int.from_bytes(r[14:17], "big") for r in debit_log] == [3300, 3500, 3350]
    assert all(r[7:11] == SAM_SERIAL and r[2:4] == DATE for r in debit_log)
    tnums = [int.from_bytes(r[11:14], "big") for r in debit_log]
    assert tnums[0] > tnums[1] > tnums[2]  # the SAM's SV transaction numbers go up


@pytest.mark.parametrize(
    ("role", "ins", "amount", "status"),
    [
        (KeyRole.DEBIT, 0xBA, 1001, 0x6A80),  # more than the balance
        (KeyRole.DEBIT, 0xB8, 100, 0x6982),  # reload needs the load key
        (KeyRole.LOAD, 0xBA, 100, 0x9000),  # load key grants debit level
        (KeyRole.LOAD, 0xB8, -1001, 0x6A80),  # negative reload under zero
    ],
)
def test_sv_refusals(
    terminal: Terminal, card: EmulatedCard, role: KeyRole, ins: int, amount: int, status: int
) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(role)
    assert sw(sv_operation(terminal, ins, amount)) == status
    close_with_sv(terminal, 1 if status == 0x9000 else 0)
    if status != 0x9000:
        assert purse(card) == (1000, 0)


def test_sv_needs_an_sv_get_and_a_good_mac(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"HDF.WALLET")
    size = 20 + (5 if terminal.extended else 0)
    debit = bytes([0x00, 0xBA, 0, 0, size]) + bytes(size)
    assert sw(card.transmit(debit)) == 0x6985  # outside a session too, SV Get comes first
    card.transmit(bytes.fromhex("007C00091E" if not terminal.extended else "007C01093D"))
    assert sw(card.transmit(debit)) == 0x6988  # out of session: MAC of zeros
    terminal.open_session(KeyRole.DEBIT)
    assert sw(terminal.send(debit)) == 0x6985  # no SV Get in this session yet
    sv_get(terminal, debit=True)
    assert sw(terminal.send(debit)) == 0x6988  # MAC of zeros
    assert sw(terminal.send(debit[:-1])) == 0x6700
    assert sw(sv_operation(terminal, 0xBA, 100, tamper=True)) == 0x6988
    # a positive amount in a debit would credit the purse: refused
    header, answer = sv_get(terminal, debit=True)
    kvc = answer[8] if terminal.extended else answer[0]
    part = partial(terminal, 0xBC, 100, kvc)
    part = bytes([0xBA]) + part[1:]  # an undebit's positive amount under the debit INS
    data = header + answer + part
    prepared = terminal.sam_ok(bytes([0x80, 0x54, 0x01, 0xFF, len(data)]) + data)
    body = bytes([prepared[2]]) + part[5:] + SAM_SERIAL + prepared[3:6] + prepared[6:]
    assert (
        sw(terminal.send(bytes([0x00, 0xBA, prepared[0], prepared[1], len(body)]) + body)) == 0x6A80
    )
    assert sw(terminal.close()) == 0x9000
    assert purse(card) == (1000, 0)  # fmt: skip


def test_sam_detects_a_forged_card_sv_signature(terminal: Terminal) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(KeyRole.DEBIT)
    assert sv_operation(terminal, 0xBA, 100) == b"\x90\x00"
    response = terminal.card.transmit(terminal.close_apdu())
    assert sw(response) == 0x9000
    size = terminal.signature_size
    terminal.sam_ok(bytes([0x80, 0x82, 0, 0, size]) + response[-2 - size : -2])
    sig = response[1 : response[0]]
    forged = bytes([sig[0] ^ 0xFF]) + sig[1:]
    assert terminal.sam.transmit(bytes([0x80, 0x58, 0, 0, len(forged)]) + forged) == b"\x69\x88"


def test_sam_refuses_to_prepare_an_impossible_balance(terminal: Terminal) -> None:
    terminal.select(b"HDF.WALLET")
    terminal.open_session(KeyRole.LOAD)
    header, answer = sv_get(terminal, debit=False)
    data = header + answer + partial(terminal, 0xB8, 0x7FFFFF, 1)
    assert terminal.sam.transmit(bytes([0x80, 0x56, 0x01, 0xFF, len(data)]) + data) == b"\x6a\x80"
    data = header + answer + partial(terminal, 0xB8, 10, 1)
    assert terminal.sam.transmit(bytes([0x80, 0x56, 0x00, 0x00, len(data)]) + data) == b"\x6b\x00"
