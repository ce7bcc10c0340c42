"""Helpers of the emulated-SAM tests: demo master keys, a deterministic random source, SAM APDUs."""

from __future__ import annotations

from collections.abc import Callable

from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import KeyFileStore, demo_key_refs

SAM_SERIAL = bytes.fromhex("5A000001")
CARD_SERIAL = bytes.fromhex("0000000012345678")
OK = b"\x90\x00"
PLUM = b"1TIC.ICA"


def demo_master_keys() -> dict[str, bytes]:
    """Fixed, obviously-fake master keys: key n is n repeated 16 times."""
    return {ref.label: bytes([n + 1]) * 16 for n, ref in enumerate(demo_key_refs())}


def key_file_store() -> KeyFileStore:
    return KeyFileStore(demo_master_keys())


def counting_random() -> Callable[[int], bytes]:
    """A reproducible stand-in for os.urandom: 01 02 03 ... across calls."""
    state = 0

    def random(size: int) -> bytes:
        nonlocal state
        out = bytes((state + i + 1) & 0xFF for i in range(size))
        state += size
        return out

    return random


def apdu(ins: int, data: bytes = b"", p1: int = 0, p2: int = 0, le: int | None = None) -> bytes:
    """A SAM command APDU (class 80)."""
    out = bytes([0x80, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le])
    return out


def ok(sam: EmulatedSAM, command: bytes) -> bytes:
    """Send ``command``, assert the SAM answered 9000, return the response data."""
    response = sam.transmit(command)
    assert response[-2:] == OK, response.hex()
    return response[:-2]
