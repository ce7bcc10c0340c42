"""Helpers of the emulated-SAM tests: fixed demo master keys and a deterministic random source."""

from __future__ import annotations

from collections.abc import Callable

from hardware.sam.keystore import KeyFileStore, demo_key_refs

SAM_SERIAL = bytes.fromhex("5A000001")
CARD_SERIAL = bytes.fromhex("0000000012345678")


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
