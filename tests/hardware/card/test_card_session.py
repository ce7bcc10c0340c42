"""Secure sessions on the card: access by key role, commit and cancel, limits, ratification."""

from __future__ import annotations

import pytest
from cardkit import SERIAL, Terminal, sw

from card_schema.crypto import KeyRole
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore

APPEND_EVENT = bytes.fromhex("00E2004003") + b"NEW"  # events, SFI 08
DECREASE_1 = bytes.fromhex("003001C803000001")  # counters (SFI 19), counter 1, minus 1
UPDATE_CONTRACT_1 = bytes.fromhex("00DC014C02") + b"CX"
RATIFY = bytes.fromhex("00B2000000")


def test_write_session_commits_at_close(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    before = card.image
    assert before is not None
    data = terminal.open_session(KeyRole.DEBIT, sfi=0x07, record=1)
    assert data[:3] == b"\xff\xff\xff"  # transaction counter before this session
    r = 8 if terminal.extended else 4  # after counter (3) || random (5 extended, 1 regular)
    ratification = 0x02 if terminal.extended else 0x00  # extended: session management allowed
    assert data[r : r + 4] == bytes([ratification, KeyRole.DEBIT.kif, 1, 29])  # KIF, KVC, length
    assert data[r + 4 :].startswith(b"\x25\x01ENV")
    assert terminal.send(APPEND_EVENT) == b"\x90\x00"
    assert terminal.send(DECREASE_1) == b"\x00\x00\x04\x90\x00"
    # reads inside the session see the session's modifications; the committed image does not
    assert terminal.send(bytes.fromhex("00B2014400"))[:3] == b"NEW"
    assert card.image is before and before.applications["plum"].records["events"][0][:2] == b"E1"
    response = terminal.close()
    # 4-byte card signature (regular) or 8 (extended); the SAM authenticated it too.
    assert sw(response) == 0x9000 and len(response) == terminal.signature_size + 2
    after = card.image
    assert after is not None and after is not before
    assert after.transaction_counter == 0xFFFFFE
    events = after.applications["plum"].records["events"]
    assert [r[:3] for r in events] == [b"NEW", b"E1\x00", b"E2\x00"]  # cyclic: oldest dropped
    assert after.applications["plum"].records["counters"][0][:3] == b"\x00\x00\x04"
    # committed to the image file: a new power-on sees it
    card.power_off()
    card.power_on()
    assert card.image == after


def test_transaction_counter_changes_at_every_session(terminal: Terminal) -> None:
    terminal.select(b"1TIC.ICA")
    counters = []
    for _ in range(3):
        counters.append(terminal.open_session(KeyRole.DEBIT)[:3])
        assert sw(terminal.close()) == 0x9000
    assert counters == [b"\xff\xff\xff", b"\xff\xff\xfe", b"\xff\xff\xfd"]


@pytest.mark.parametrize(
    ("role", "apdu", "status"),
    [
        (KeyRole.DEBIT, UPDATE_CONTRACT_1, 0x6982),  # contracts need the load key
        (KeyRole.LOAD, UPDATE_CONTRACT_1, 0x9000),
        (KeyRole.ISSUER, UPDATE_CONTRACT_1, 0x9000),  # issuer key grants every level
        (KeyRole.DEBIT, bytes.fromhex("00DC013C0141"), 0x6982),  # environment needs issuer
        (KeyRole.LOAD, bytes.fromhex("00DC013C0141"), 0x6982),
        (KeyRole.ISSUER, bytes.fromhex("00DC013C0141"), 0x9000),
        (KeyRole.DEBIT, APPEND_EVENT, 0x9000),
        (KeyRole.DEBIT, bytes.fromhex("003201C803000001"), 0x6982),  # increase needs load
        (KeyRole.DEBIT, bytes.fromhex("00DC01440141"), 0x6985),  # events: never updated
        (KeyRole.LOAD, bytes.fromhex("00E2004803") + b"NEW", 0x6985),  # contracts: no append
        (KeyRole.ISSUER, bytes.fromhex("003001480300000100"), 0x6985),  # contracts: no counter
        (KeyRole.DEBIT, bytes.fromhex("003001C8020001"), 0x6700),  # counter value is 3 bytes
        (KeyRole.DEBIT, bytes.fromhex("00300AC803000001"), 0x6A83),  # counter 10 does not exist
        (KeyRole.DEBIT, bytes.fromhex("003002C803000011"), 0x6A80),  # 0x10 - 0x11 < 0
        (KeyRole.LOAD, bytes.fromhex("003201C803FFFFFF"), 0x6A80),  # above FFFFFF
        (KeyRole.LOAD, bytes.fromhex("00DC054C0141"), 0x6A83),  # record 5 of 4
        (KeyRole.LOAD, bytes.fromhex("00DC014C1E" + "41" * 30), 0x6700),  # 30 bytes > 29
        (KeyRole.LOAD, bytes.fromhex("00DC004C0141"), 0x6B00),
    ],
)
def test_access_conditions_in_session(
    terminal: Terminal, role: KeyRole, apdu: bytes, status: int
) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(role)
    assert sw(terminal.send(apdu)) == status
    assert sw(terminal.close()) == 0x9000  # a refused command does not break the session


def test_write_record_ors_and_update_pads(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.LOAD)
    assert terminal.send(bytes.fromhex("00D2014C020102")) == b"\x90\x00"  # "C1" | 01 02
    assert terminal.send(bytes.fromhex("00DC024C01AA")) == b"\x90\x00"
    assert sw(terminal.close()) == 0x9000
    assert card.image is not None
    contracts = card.image.applications["plum"].records["contracts"]
    assert contracts[0][:2] == bytes([ord("C") | 1, ord("1") | 2])
    assert contracts[1] == b"\xaa" + bytes(28)


def test_wrong_signature_cancels_the_session(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    before = card.image
    terminal.open_session(KeyRole.DEBIT)
    terminal.send(APPEND_EVENT)
    close = bytearray(terminal.close_apdu())
    close[5] ^= 0x01
    assert card.transmit(bytes(close)) == b"\x69\x88"
    assert card.image is before and not card.in_session
    assert sw(card.transmit(APPEND_EVENT)) == 0x6982


def test_a_command_missing_from_the_sam_digest_fails_the_close(
    terminal: Terminal, card: EmulatedCard
) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    assert card.transmit(APPEND_EVENT) == b"\x90\x00"  # behind the SAM's back
    assert sw(terminal.close()) == 0x6988


def test_close_without_signature_cancels(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    before = card.image
    terminal.open_session(KeyRole.DEBIT)
    terminal.send(APPEND_EVENT)
    assert card.transmit(bytes.fromhex("008E000000")) == b"\x90\x00"
    assert card.image is before and not card.in_session


@pytest.mark.parametrize(
    "interruption",
    ["power_off", "select_other_application", "select_mf", "open_again"],
)
def test_interrupted_sessions_change_nothing(
    terminal: Terminal, card: EmulatedCard, store: CardImageStore, interruption: str
) -> None:
    terminal.select(b"1TIC.ICA")
    before = store.load()
    terminal.open_session(KeyRole.DEBIT)
    terminal.send(APPEND_EVENT)
    if interruption == "power_off":
        card.power_off()
        card.power_on()
    elif interruption == "select_other_application":
        terminal.select(b"HDF.CURSUS")
    elif interruption == "select_mf":
        card.transmit(bytes.fromhex("00A40000023F00"))
    else:
        terminal.open_session(KeyRole.DEBIT)
        assert sw(terminal.close()) == 0x9000
        before.transaction_counter -= 1
    assert not card.in_session
    assert store.load() == before


def test_no_count_limit_only_the_byte_budget(terminal: Terminal) -> None:
    """The card declares a buffer-size index (6: 215 bytes), not a number of commands."""
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    for _ in range(10):  # 9 bytes each (Lc 3 + 6): 90 of 215
        assert terminal.send(APPEND_EVENT) == b"\x90\x00"
    assert sw(terminal.close()) == 0x9000


def test_session_buffer_limit(terminal: Terminal) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.LOAD)
    full = bytes.fromhex("00DC014C1D") + b"X" * 29  # 29 + 6 = 35 bytes of buffer
    for _ in range(6):  # 210 of 215
        assert terminal.send(full) == b"\x90\x00"
    assert terminal.send(full) == b"\x64\x00"
    assert terminal.send(bytes.fromhex("00DC024C0141")) == b"\x64\x00"  # 7 bytes > 5 left
    assert sw(terminal.close()) == 0x9000


def test_deferred_ratification(
    terminal: Terminal, card: EmulatedCard, store: CardImageStore
) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    terminal.send(APPEND_EVENT)
    assert sw(terminal.close(ratify=False)) == 0x9000
    assert store.load().ratified is False  # committed, but not yet ratified
    assert card.transmit(RATIFY) == b"\x90\x00"
    assert store.load().ratified is True
    assert sw(card.transmit(RATIFY)) == 0x6B00  # only right after a close


def test_unratified_session_shows_at_the_next_open(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    terminal.send(APPEND_EVENT)
    assert sw(terminal.close(ratify=False)) == 0x9000
    card.power_off()  # the card left before the ratification command
    card.power_on()
    terminal.select(b"1TIC.ICA")
    r = 8 if terminal.extended else 4
    data = terminal.open_session(KeyRole.DEBIT)
    assert data[r] & 0x01 == 0x01  # previous session not ratified
    assert sw(terminal.close()) == 0x9000
    terminal.open_session(KeyRole.DEBIT)
    assert terminal.open_session(KeyRole.DEBIT)[r] & 0x01 == 0x00


def test_any_command_after_close_ratifies(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    assert sw(terminal.close(ratify=False)) == 0x9000
    assert sw(card.transmit(bytes.fromhex("00B2014C00"))) == 0x9000
    assert card.image is not None and card.image.ratified


def test_open_session_refusals(
    terminal: Terminal, card: EmulatedCard, store: CardImageStore
) -> None:
    regular = "008A0301" + "04" + "01020304" + "00"  # debit key (3), regular (P2 01)
    extended = "008A0302" + "09" + "00" + "0102030405060708" + "00"  # extended (P2 02)
    assert sw(card.transmit(bytes.fromhex(regular))) == 0x6985  # no application selected
    terminal.select(b"1TIC.ICA")
    assert sw(card.transmit(bytes.fromhex("008A0401040102030400"))) == 0x6B00  # key index 4
    assert sw(card.transmit(bytes.fromhex("008A0001040102030400"))) == 0x6B00  # key index 0
    assert sw(card.transmit(bytes.fromhex("008A0303040102030400"))) == 0x6B00  # P2 mode 3
    assert sw(card.transmit(bytes.fromhex("008A0300040102030400"))) == 0x6B00  # P2 mode 0
    assert sw(card.transmit(bytes.fromhex("008A030103010203"))) == 0x6700  # 3-byte challenge
    assert sw(card.transmit(bytes.fromhex("008A030208010203040506070800"))) == 0x6700
    assert sw(card.transmit(bytes.fromhex("008A030209010102030405060708" + "00"))) == 0x6A80
    assert sw(card.transmit(bytes.fromhex("008A0B01040102030400"))) == 0x6B00  # record, no SFI
    assert sw(card.transmit(bytes.fromhex("008A2B3904010203040" + "0"))) == 0x6A83  # record 5
    assert sw(card.transmit(bytes.fromhex(regular))) == 0x9000
    assert sw(card.transmit(bytes.fromhex(extended))) == 0x9000
    image = store.load()
    del image.applications["plum"].keys[KeyRole.DEBIT]
    image.transaction_counter = 0
    store.commit(image)
    card.power_on()
    terminal.select(b"1TIC.ICA")
    assert sw(card.transmit(bytes.fromhex(regular))) == 0x6A88  # no debit key on the card
    load = "008A0201040102030400"
    assert sw(card.transmit(bytes.fromhex(load))) == 0x6900  # transaction counter worn out


def test_regular_card_refuses_extended_sessions(store: CardImageStore) -> None:
    card = EmulatedCard(store, rev32_mode=False)
    card.power_on()
    assert sw(card.transmit(bytes.fromhex("00A404000831544943 2E49434100".replace(" ", "")))) == (
        0x9000
    )
    extended = "008A030209000102030405060708" + "00"
    assert sw(card.transmit(bytes.fromhex(extended))) == 0x6B00
    assert sw(card.transmit(bytes.fromhex("008A0301040102030400"))) == 0x9000


def test_invalidate_and_rehabilitate(terminal: Terminal, card: EmulatedCard) -> None:
    terminal.select(b"1TIC.ICA")
    terminal.open_session(KeyRole.DEBIT)
    assert terminal.send(bytes.fromhex("0004000000")) == b"\x90\x00"
    assert sw(terminal.send(bytes.fromhex("0004000000"))) == 0x6985  # already invalidated
    assert sw(terminal.send(APPEND_EVENT)) == 0x6985
    assert sw(terminal.close()) == 0x9000
    selected = terminal.select(b"1TIC.ICA")
    assert sw(selected) == 0x6283 and selected.startswith(b"\x6f")  # selected, with a warning
    assert sw(card.transmit(bytes.fromhex("00B2014C00"))) == 0x9000  # reading stays free
    terminal.open_session(KeyRole.DEBIT)
    assert sw(terminal.send(bytes.fromhex("0044000000"))) == 0x6982  # rehabilitation: load key
    terminal.close()
    terminal.open_session(KeyRole.LOAD)
    assert terminal.send(bytes.fromhex("0044000000")) == b"\x90\x00"
    assert terminal.send(APPEND_EVENT) == b"\x90\x00"
    assert sw(terminal.close()) == 0x9000
    assert sw(terminal.select(b"1TIC.ICA")) == 0x9000


def test_session_key_depends_on_the_card_serial(terminal: Terminal, card: EmulatedCard) -> None:
    """A SAM told the wrong serial computes the wrong card key: the close fails."""
    terminal.select(b"1TIC.ICA")
    challenge = terminal.sam_ok(bytes.fromhex("8084000004"))
    data = card.transmit(bytes.fromhex("008A030104") + challenge + b"\x00")[:-2]
    terminal.sam_ok(b"\x80\x14\x00\x00\x08" + bytes(8))  # not the card's serial
    init = data[5:7] + data
    terminal.sam_ok(b"\x80\x8a\x00\xff" + bytes([len(init)]) + init)
    terminal.extended = False
    assert bytes(8) != SERIAL
    assert sw(terminal.close()) == 0x6988
