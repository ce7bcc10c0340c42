"""Load Card Key: a desk SAM holding only the transport key opens sessions with wrapped card keys.

The card keys are wrapped exactly as the backend wraps them (RFC 3394 under ``desk.transport.v1``,
docs/backend.md); here with ``cryptography``'s reference implementation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from samkit import (
    CARD_SERIAL,
    OK,
    PLUM,
    SAM_SERIAL,
    apdu,
    counting_random,
    demo_master_keys,
    key_file_store,
    ok,
)

from card_schema.crypto import KeyRef, KeyRole, card_key
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.personalise import new_card
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import (
    TRANSPORT_KEY_LABEL,
    KeyFileStore,
    KeyStoreError,
    PKCS11KeyStore,
    new_key_file,
)
from hardware.sam.softhsm import create_token, find_library

TRANSPORT = bytes.fromhex("7e" * 16)
OTHER_SERIAL = bytes.fromhex("00000000CAFE0001")


def wrapped(role: KeyRole, serial: bytes = CARD_SERIAL, transport: bytes = TRANSPORT) -> bytes:
    master = demo_master_keys()[KeyRef("plum", role, 1).label]
    return aes_key_wrap(transport, card_key(master, serial, PLUM))


def desk_sam(store: object | None = None) -> EmulatedSAM:
    """A SAM with the transport key and no master key at all."""
    keys = store if store is not None else KeyFileStore({TRANSPORT_KEY_LABEL: TRANSPORT})
    sam = EmulatedSAM(keys, SAM_SERIAL, random=counting_random())  # type: ignore[arg-type]
    sam.power_on()
    return sam


def card_session(sam: EmulatedSAM, tmp_path: Path, *, load: bool = True) -> bytes:
    """A load-key session writing a contract on a factory card; the close answer."""
    store = CardImageStore(tmp_path / "card.json")
    store.commit(new_card(CARD_SERIAL, key_file_store()))
    card = EmulatedCard(store, random=counting_random())
    card.power_on()
    assert card.transmit(bytes.fromhex("00A4040C08") + PLUM)[-2:] == OK
    ok(sam, apdu(0x14, CARD_SERIAL))
    if load:
        ok(sam, apdu(0xD8, bytes([KeyRole.LOAD.kif, 1]) + wrapped(KeyRole.LOAD)))
    challenge = ok(sam, apdu(0x84, le=4))
    # Regular mode: P1 = key index 2 (load), P2 = 01, data = the 4-byte challenge.
    header = bytes([0x00, 0x8A, KeyRole.LOAD.key_index, 0x01, 4])
    opened = card.transmit(header + challenge + b"\x00")
    assert opened[-2:] == OK
    ok(sam, apdu(0x14, CARD_SERIAL))  # the engine's own Select Diversifier keeps the key
    init = sam.transmit(apdu(0x8A, opened[5:7] + opened[:-2], p2=0xFF))
    if init != OK:
        return init
    command = bytes.fromhex("00DC014C") + bytes([29]) + bytes(range(29))  # contracts, record 1
    response = card.transmit(command)
    ok(sam, apdu(0x8C, command))
    ok(sam, apdu(0x8C, response))
    signature = ok(sam, apdu(0x8E, le=4))
    closed = card.transmit(b"\x00\x8e\x80\x00\x04" + signature + b"\x00")
    assert closed[-2:] == OK, closed.hex()
    ok(sam, apdu(0x82, closed[:4]))
    assert store.load().applications["plum"].records["contracts"][0] == bytes(range(29))
    return closed


def test_desk_sam_without_master_keys_writes_with_a_loaded_key(tmp_path: Path) -> None:
    card_session(desk_sam(), tmp_path)


def test_without_load_card_key_the_desk_sam_has_no_key(tmp_path: Path) -> None:
    assert card_session(desk_sam(), tmp_path, load=False) == b"\x6a\x83"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (bytes([0x99, 1]) + wrapped(KeyRole.LOAD), b"\x6a\x80"),  # unknown KIF
        (bytes([KeyRole.LOAD.kif, 1]) + wrapped(KeyRole.LOAD, transport=bytes(16)), b"\x6a\x80"),
        (bytes([KeyRole.LOAD.kif, 1]) + bytes(24), b"\x6a\x80"),  # integrity check fails
        (bytes([KeyRole.LOAD.kif, 1]) + bytes(16), b"\x67\x00"),  # not a wrapped AES-128 key
    ],
)
def test_refused_keys(data: bytes, status: bytes) -> None:
    sam = desk_sam()
    ok(sam, apdu(0x14, CARD_SERIAL))
    assert sam.transmit(apdu(0xD8, data)) == status


def test_load_card_key_needs_a_selected_card_and_a_transport_key() -> None:
    data = bytes([KeyRole.LOAD.kif, 1]) + wrapped(KeyRole.LOAD)
    assert desk_sam().transmit(apdu(0xD8, data)) == b"\x69\x85"
    gate_sam = EmulatedSAM(key_file_store(), SAM_SERIAL)
    gate_sam.power_on()
    ok(gate_sam, apdu(0x14, CARD_SERIAL))
    assert gate_sam.transmit(apdu(0xD8, data)) == b"\x6a\x88"


def test_loaded_key_is_dropped_for_another_card_and_at_power_off(tmp_path: Path) -> None:
    sam = desk_sam()
    ok(sam, apdu(0x14, CARD_SERIAL))
    ok(sam, apdu(0xD8, bytes([KeyRole.LOAD.kif, 1]) + wrapped(KeyRole.LOAD)))
    ok(sam, apdu(0x14, OTHER_SERIAL))  # another card
    ok(sam, apdu(0x14, CARD_SERIAL))
    ok(sam, apdu(0x84, le=4))
    opening = b"\xff\xff\xff\x07\x00" + bytes([KeyRole.LOAD.kif, 1, 0])
    init = apdu(0x8A, bytes([KeyRole.LOAD.kif, 1]) + opening, p2=0xFF)
    assert sam.transmit(init) == b"\x6a\x83"
    ok(sam, apdu(0xD8, bytes([KeyRole.LOAD.kif, 1]) + wrapped(KeyRole.LOAD)))
    sam.power_off()
    sam.power_on()
    ok(sam, apdu(0x14, CARD_SERIAL))
    ok(sam, apdu(0x84, le=4))
    assert sam.transmit(init) == b"\x6a\x83"


def test_key_file_unwrap_refuses_without_transport_key() -> None:
    with pytest.raises(KeyStoreError):
        key_file_store().unwrap_card_key(wrapped(KeyRole.LOAD))


def test_new_key_file_with_a_transport_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path, transport_key=True)
    store = KeyFileStore.load(path)
    assert TRANSPORT_KEY_LABEL in store.labels()
    key = bytes(range(16))
    transport = store.master_keys()[TRANSPORT_KEY_LABEL]
    assert store.unwrap_card_key(aes_key_wrap(transport, key)) == key


@pytest.mark.integration
def test_token_sam_unwraps_inside_the_token(tmp_path: Path) -> None:
    if find_library() is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")  # a failure in CI
    token = create_token(tmp_path / "hsm", master_keys={TRANSPORT_KEY_LABEL: TRANSPORT})
    store = PKCS11KeyStore(token.library, token.label, token.user_pin)
    try:
        card_session(desk_sam(store), tmp_path)
        assert store.unwrap_card_key(wrapped(KeyRole.LOAD)) == card_key(
            demo_master_keys()["plum.load.v1"], CARD_SERIAL, PLUM
        )
        with pytest.raises(KeyStoreError):
            store.unwrap_card_key(bytes(24))
    finally:
        store.close()
