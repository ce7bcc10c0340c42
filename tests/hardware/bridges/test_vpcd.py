"""vpcd bridge: byte transcripts against a stand-in vpcd, then the real pcscd + vpcd."""

from __future__ import annotations

import functools
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hardware.bridges.testchip import TestChip
from hardware.bridges.vpcd import VPCDBridge
from hardware.pcsc_stack import PCSCStack


def _send(conn: socket.socket, payload: bytes) -> None:
    conn.sendall(struct.pack(">H", len(payload)) + payload)


def _recv(conn: socket.socket) -> bytes:
    header = conn.recv(2, socket.MSG_WAITALL)
    (size,) = struct.unpack(">H", header)
    return conn.recv(size, socket.MSG_WAITALL)


@pytest.fixture
def fake_vpcd() -> Iterator[socket.socket]:
    """A listening socket playing vpcd's side of the protocol."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    yield server
    server.close()


def test_transcript_atr_power_and_apdu(fake_vpcd: socket.socket) -> None:
    chip = TestChip()
    with VPCDBridge(chip, fake_vpcd.getsockname()[1]) as bridge:
        conn, _ = fake_vpcd.accept()
        conn.settimeout(5)
        assert bridge.wait_connected(5)
        _send(conn, b"\x04")  # get ATR before power on: vpcd's presence poll
        assert _recv(conn) == chip.atr
        _send(conn, b"\x01")  # power on
        _send(conn, bytes.fromhex("00A4040008") + b"1TIC.ICA")
        assert _recv(conn).endswith(b"\x90\x00")
        assert chip.powered
        _send(conn, bytes.fromhex("00B2013C1D"))
        assert _recv(conn) == chip.applications[0].files[7][0] + b"\x90\x00"
        _send(conn, b"\x02")  # reset: power cycle, selection lost
        _send(conn, bytes.fromhex("00B2013C1D"))
        assert _recv(conn) == b"\x69\x85"
        _send(conn, b"\x00")  # power off
        _send(conn, b"\x04")
        assert _recv(conn) == chip.atr
        assert not chip.powered
        assert bridge.apdus == 3
        conn.close()


def test_one_byte_message_that_is_no_control_is_an_apdu(fake_vpcd: socket.socket) -> None:
    chip = TestChip()
    with VPCDBridge(chip, fake_vpcd.getsockname()[1]) as bridge:
        conn, _ = fake_vpcd.accept()
        conn.settimeout(5)
        assert bridge.wait_connected(5)
        _send(conn, b"\x01")
        for message in (b"\xff", b"\x03", b"\x00\xa4", b"\x00\xa4\x04"):
            _send(conn, message)
            assert _recv(conn) == b"\x67\x00"
        assert chip.powered  # the 01 before them was a control: followed at once by a message
        assert bridge.apdus == 4
        conn.close()


@pytest.mark.parametrize("byte", [0x00, 0x01, 0x02])
def test_silent_control_byte_unfollowed_is_an_apdu_and_answered(
    fake_vpcd: socket.socket, byte: int
) -> None:
    """vpcd waits in silence for the answer to a 1-byte APDU that looks like a control."""
    chip = TestChip()
    with VPCDBridge(chip, fake_vpcd.getsockname()[1], control_grace=0.3) as bridge:
        conn, _ = fake_vpcd.accept()
        conn.settimeout(5)
        assert bridge.wait_connected(5)
        _send(conn, b"\x01")
        _send(conn, bytes.fromhex("00A4040008") + b"1TIC.ICA")
        assert _recv(conn).endswith(b"\x90\x00")
        _send(conn, bytes([byte]))  # and nothing more: vpcd is waiting for an answer
        assert _recv(conn) == b"\x67\x00"
        # not carried out as a control: the chip kept its power and its selection
        assert chip.powered
        _send(conn, bytes.fromhex("00B2013C1D"))
        assert _recv(conn) == chip.applications[0].files[7][0] + b"\x90\x00"
        assert bridge.apdus == 3
        conn.close()


def test_silent_control_followed_by_vpcd_is_carried_out(fake_vpcd: socket.socket) -> None:
    chip = TestChip()
    with VPCDBridge(chip, fake_vpcd.getsockname()[1], control_grace=0.3) as bridge:
        conn, _ = fake_vpcd.accept()
        conn.settimeout(5)
        assert bridge.wait_connected(5)
        # one write: the control and what vpcd sends after it are there together
        conn.sendall(struct.pack(">HBHB", 1, 0x01, 1, 0x04))
        assert _recv(conn) == chip.atr
        assert chip.powered
        conn.sendall(struct.pack(">HBHB", 1, 0x00, 1, 0x04))
        assert _recv(conn) == chip.atr
        assert not chip.powered
        assert bridge.apdus == 0
        conn.close()


def test_socket_has_tcp_nodelay(fake_vpcd: socket.socket) -> None:
    with VPCDBridge(TestChip(), fake_vpcd.getsockname()[1]) as bridge:
        conn, _ = fake_vpcd.accept()
        assert bridge.wait_connected(5)
        assert bridge._sock is not None
        assert bridge._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        conn.close()


def test_remove_closes_and_insert_reconnects(fake_vpcd: socket.socket) -> None:
    chip = TestChip()
    with VPCDBridge(chip, fake_vpcd.getsockname()[1]) as bridge:
        first, _ = fake_vpcd.accept()
        first.settimeout(5)
        assert bridge.wait_connected(5)
        _send(first, b"\x01")
        _send(first, b"\x04")
        _recv(first)
        bridge.remove()
        assert first.recv(2) == b""  # connection closed: vpcd reports the card removed
        assert not bridge.connected
        assert not chip.powered
        bridge.insert()
        second, _ = fake_vpcd.accept()
        assert bridge.wait_connected(5)
        first.close()
        second.close()


def test_waits_for_vpcd_then_connects() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with VPCDBridge(TestChip(), port, retry_interval=0.01) as bridge:
        assert not bridge.wait_connected(0.1)
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(5)
        conn, _ = server.accept()
        assert bridge.wait_connected(5)
        conn.close()
        server.close()


@pytest.mark.integration
def test_card_and_sam_appear_as_two_pcscd_readers(pcsc_stack: PCSCStack) -> None:
    from smartcard.scard import (
        SCARD_PROTOCOL_T1,
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCARD_SHARE_SHARED,
        SCardConnect,
        SCardDisconnect,
        SCardEstablishContext,
        SCardReleaseContext,
        SCardTransmit,
    )

    card, sam = TestChip(historical=b"CARD"), TestChip(historical=b"SAM")
    with (
        VPCDBridge(card, pcsc_stack.card_port, name="card"),
        VPCDBridge(sam, pcsc_stack.sam_port, name="SAM"),
    ):
        for name in pcsc_stack.readers:
            assert pcsc_stack.wait_for_card_state(name, True, 5)
        rv, context = SCardEstablishContext(SCARD_SCOPE_USER)
        assert rv == SCARD_S_SUCCESS
        try:
            for name, chip in ((pcsc_stack.card_reader, card), (pcsc_stack.sam_reader, sam)):
                rv, handle, protocol = SCardConnect(
                    context, name, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1
                )
                assert rv == SCARD_S_SUCCESS
                rv, response = SCardTransmit(
                    handle, protocol, list(bytes.fromhex("00A4040008") + b"1TIC.ICA")
                )
                assert rv == SCARD_S_SUCCESS and bytes(response[-2:]) == b"\x90\x00"
                assert chip.commands == 1
                SCardDisconnect(handle, 0)
        finally:
            SCardReleaseContext(context)
    for name in pcsc_stack.readers:
        assert pcsc_stack.wait_for_card_state(name, False, 5)


@pytest.mark.integration
def test_short_commands_through_pcscd_get_a_status_word_and_the_reader_goes_on(
    pcsc_stack: PCSCStack,
) -> None:
    """1-, 2- and 3-byte commands through the real pcscd + vpcd: each answered, reader usable."""
    from smartcard.scard import (
        SCARD_LEAVE_CARD,
        SCARD_PROTOCOL_T1,
        SCARD_RESET_CARD,
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCARD_SHARE_SHARED,
        SCARD_UNPOWER_CARD,
        SCardConnect,
        SCardDisconnect,
        SCardEstablishContext,
        SCardReconnect,
        SCardReleaseContext,
        SCardTransmit,
    )

    select = list(bytes.fromhex("00A4040008") + b"1TIC.ICA")
    chip = TestChip()
    with VPCDBridge(chip, pcsc_stack.card_port, name="card") as bridge:
        assert pcsc_stack.wait_for_card_state(pcsc_stack.card_reader, True, 5)
        rv, context = SCardEstablishContext(SCARD_SCOPE_USER)
        assert rv == SCARD_S_SUCCESS
        try:
            rv, handle, protocol = SCardConnect(
                context, pcsc_stack.card_reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1
            )
            assert rv == SCARD_S_SUCCESS
            # FF: before this bridge, taken for a vpcd control, unanswered, pcscd wedged
            for command in ("FF", "00A4", "00A404", "00", "01", "02"):
                apdu = list(bytes.fromhex(command))
                rv, response = _bounded(
                    functools.partial(SCardTransmit, handle, protocol, apdu), 30
                )
                assert rv == SCARD_S_SUCCESS, command
                assert bytes(response) == b"\x67\x00", command
            rv, response = SCardTransmit(handle, protocol, select)
            assert rv == SCARD_S_SUCCESS and bytes(response[-2:]) == b"\x90\x00"
            assert bridge.apdus == 7
            # real controls are still carried out: reset, power off, power on
            rv, protocol = SCardReconnect(
                handle, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1, SCARD_RESET_CARD
            )
            assert rv == SCARD_S_SUCCESS
            rv, response = SCardTransmit(handle, protocol, list(bytes.fromhex("00B2013C1D")))
            assert rv == SCARD_S_SUCCESS and bytes(response) == b"\x69\x85"  # selection lost
            assert SCardDisconnect(handle, SCARD_UNPOWER_CARD) == SCARD_S_SUCCESS
            assert _wait_for(lambda: not chip.powered, 5)
            rv, handle, protocol = SCardConnect(
                context, pcsc_stack.card_reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1
            )
            assert rv == SCARD_S_SUCCESS
            assert chip.powered
            rv, response = SCardTransmit(handle, protocol, select)
            assert rv == SCARD_S_SUCCESS and bytes(response[-2:]) == b"\x90\x00"
            SCardDisconnect(handle, SCARD_LEAVE_CARD)
        finally:
            bridge.stop()  # first: a vpcd still waiting for an answer would hold pcscd
            SCardReleaseContext(context)
    assert pcsc_stack.wait_for_card_state(pcsc_stack.card_reader, False, 5)


def _bounded(call: Callable[[], tuple[int, list[int]]], timeout: float) -> tuple[int, list[int]]:
    """``call()`` in a thread; fails the test if it has not returned after ``timeout`` seconds."""
    result: list[tuple[int, list[int]]] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        pytest.fail(f"no answer through pcscd in {timeout} s: the reader hangs")
    return result[0]


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
