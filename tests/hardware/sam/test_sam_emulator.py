"""The emulated SAM: commands, refusals, session signatures, key file and token agreeing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samkit import CARD_SERIAL, OK, PLUM, SAM_SERIAL, apdu, counting_random, key_file_store, ok

from card_schema.crypto import KeyRole
from card_schema.errors import VerificationError
from card_schema.traceability import sam_trace_key, verify_traceable_signature
from hardware.card.emulator import EmulatedCard
from hardware.card.image import CardImageStore
from hardware.personalise import new_card
from hardware.sam.emulator import EmulatedSAM
from hardware.sam.keystore import MasterKeyStore, PKCS11KeyStore


@pytest.fixture
def sam() -> EmulatedSAM:
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL, random=counting_random())
    assert sam.power_on().startswith(b"\x3b")
    return sam


def run_session(keys: MasterKeyStore, tmp_path: Path) -> list[bytes]:
    """A whole session (card on a key file, SAM on ``keys``) with fixed randomness; SAM outputs."""
    tmp_path.mkdir(exist_ok=True)
    store = CardImageStore(tmp_path / "card.json")
    store.commit(new_card(CARD_SERIAL, key_file_store()))
    card = EmulatedCard(store, random=counting_random())
    card.power_on()
    sam = EmulatedSAM(keys, SAM_SERIAL, random=counting_random())
    sam.power_on()
    outputs = []
    assert card.transmit(bytes.fromhex("00A4040C08") + PLUM)[-2:] == OK
    ok(sam, apdu(0x14, CARD_SERIAL + PLUM))
    challenge = ok(sam, apdu(0x84, le=8))
    opened = card.transmit(bytes([0x00, 0x8A, 0, 0, 9, KeyRole.DEBIT.kif]) + challenge + b"\x00")
    ok(sam, apdu(0x8A, opened[:-2]))
    for command in (bytes.fromhex("00E2004003") + b"EVT", bytes.fromhex("003001C803000000")):
        response = card.transmit(command)
        ok(sam, apdu(0x8C, command))
        ok(sam, apdu(0x8C, response))
    signature = ok(sam, apdu(0x8E, le=8))
    outputs.append(signature)
    closed = card.transmit(b"\x00\x8e\x80\x00\x08" + signature + b"\x08")
    assert closed[-2:] == OK
    ok(sam, apdu(0x82, closed[:8]))
    outputs.append(closed[:8])
    outputs.append(ok(sam, apdu(0x2A, b"a transaction record", p1=0x9E, p2=0x9A)))
    return outputs


def test_full_session_with_the_key_file(tmp_path: Path) -> None:
    assert len(run_session(key_file_store(), tmp_path)) == 3


@pytest.mark.integration
def test_token_sam_and_key_file_sam_give_identical_results(
    tmp_path: Path, token_store: PKCS11KeyStore
) -> None:
    from_file = run_session(key_file_store(), tmp_path / "file")
    from_token = run_session(token_store, tmp_path / "token")
    assert from_file == from_token


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (bytes.fromhex("0084000008"), 0x6E00),
        (bytes.fromhex("80FF000000"), 0x6D00),
        (bytes.fromhex("8084"), 0x6700),
        (bytes.fromhex("8084000004"), 0x6C08),
        (bytes.fromhex("8084010008"), 0x6B00),
        (apdu(0x14, CARD_SERIAL + b"UNKNOWN"), 0x6A88),
        (apdu(0x14, CARD_SERIAL), 0x6700),
        (apdu(0x8A, bytes(15)), 0x6985),  # no diversifier, no challenge
        (apdu(0x8C, b"\x00"), 0x6985),  # no digest
        (apdu(0x8E, le=8), 0x6985),
        (apdu(0x82, bytes(8)), 0x6985),
        (apdu(0x54, bytes(16)), 0x6985),
        (apdu(0x58, bytes(8)), 0x6985),
        (apdu(0x2A, b"x", p1=0x9E, p2=0x9B), 0x6B00),
        (apdu(0x2A, p1=0x9E, p2=0x9A), 0x6700),
        (apdu(0xCA, p1=0x9F, p2=0x7F), 0x6A88),
    ],
)
def test_refusals(sam: EmulatedSAM, command: bytes, status: int) -> None:
    assert sam.transmit(command) == status.to_bytes(2, "big")


def test_digest_needs_a_known_key(sam: EmulatedSAM) -> None:
    ok(sam, apdu(0x14, CARD_SERIAL + PLUM))
    ok(sam, apdu(0x84, le=8))
    open_response = bytes(8) + b"\xff\xff\xff\x00" + bytes([KeyRole.DEBIT.kif, 7, 0])  # KVC 7
    assert sam.transmit(apdu(0x8A, open_response)) == b"\x6a\x88"
    ok(sam, apdu(0x84, le=8))
    assert sam.transmit(apdu(0x8A, open_response + b"\x00")) == b"\x6a\x80"  # length mismatch


def test_card_signature_is_checked_once(sam: EmulatedSAM) -> None:
    ok(sam, apdu(0x14, CARD_SERIAL + PLUM))
    ok(sam, apdu(0x84, le=8))
    ok(sam, apdu(0x8A, bytes(8) + b"\xff\xff\xff\x00" + bytes([KeyRole.DEBIT.kif, 1, 0])))
    assert sam.transmit(apdu(0x82, bytes(8))) == b"\x69\x85"  # digest not closed yet
    ok(sam, apdu(0x8C, b"\x00\xb2\x01\x3c\x00"))
    ok(sam, apdu(0x8E, le=8))
    assert sam.transmit(apdu(0x8C, b"late")) == b"\x69\x85"
    assert sam.transmit(apdu(0x82, bytes(8))) == b"\x69\x88"
    assert sam.transmit(apdu(0x82, bytes(8))) == b"\x69\x85"  # no second try


def test_traceable_signatures(sam: EmulatedSAM) -> None:
    record = b"2026-11-27 gate 12 card 12345678"
    first = ok(sam, apdu(0x2A, record, p1=0x9E, p2=0x9A))
    second = ok(sam, apdu(0x2A, record, p1=0x9E, p2=0x9A))
    assert first[:4] == second[:4] == SAM_SERIAL
    assert (first[4:7], second[4:7]) == (b"\x00\x00\x00", b"\x00\x00\x01")
    assert ok(sam, apdu(0xCA, p1=0x00, p2=0xC0)) == SAM_SERIAL + b"\x00\x00\x02"
    trace_master = bytes([len(key_file_store().labels())]) * 16  # the last demo key
    key = sam_trace_key(trace_master, SAM_SERIAL)
    parsed = verify_traceable_signature(key, second, record)
    assert (parsed.sam_serial, parsed.sam_counter) == (SAM_SERIAL, 1)
    with pytest.raises(VerificationError):
        verify_traceable_signature(key, second, record + b"!")
    with pytest.raises(VerificationError):
        verify_traceable_signature(key, second[:4] + b"\x00\x00\x05" + second[7:], record)
    with pytest.raises(VerificationError):
        verify_traceable_signature(key, second[:-1] + bytes([second[-1] ^ 1]), record)
    with pytest.raises(VerificationError):
        verify_traceable_signature(key, second[:-1], record)


def test_signature_counter_survives_a_restart(tmp_path: Path) -> None:
    counter_file = tmp_path / "sam-counter.json"
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL, counter_file=counter_file)
    for _ in range(3):
        ok(sam, apdu(0x2A, b"r", p1=0x9E, p2=0x9A))
    again = EmulatedSAM(key_file_store(), SAM_SERIAL, counter_file=counter_file)
    assert ok(again, apdu(0x2A, b"r", p1=0x9E, p2=0x9A))[4:7] == b"\x00\x00\x03"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_fuzz_never_raises(commands: list[bytes]) -> None:
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL)
    sam.power_on()
    for command in [apdu(0x14, CARD_SERIAL + PLUM), apdu(0x84, le=8), *commands]:
        response = sam.transmit(command)
        assert len(response) >= 2 and response[-2:] != b"\x6f\x00"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x80, 0x80, 0x94, 0x00]),
            st.sampled_from(
                [0x14, 0x84, 0x8A, 0x8C, 0x8E, 0x82, 0x56, 0x54, 0x5C, 0x58, 0x2A, 0xCA]
            ),
            st.sampled_from([(0, 0), (0x9E, 0x9A), (0x00, 0xC0), (1, 2)]),
            st.binary(max_size=40),
            st.one_of(st.none(), st.integers(0, 255)),
        ),
        max_size=10,
    )
)
def test_fuzz_structured_commands(
    commands: list[tuple[int, int, tuple[int, int], bytes, int | None]],
) -> None:
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL)
    sam.power_on()
    ok(sam, apdu(0x14, CARD_SERIAL + PLUM))
    for cla, ins, (p1, p2), data, le in commands:
        command = bytes([cla, ins, p1, p2])
        command += (bytes([len(data)]) + data if data else b"") + (
            b"" if le is None else bytes([le])
        )
        response = sam.transmit(command)
        assert len(response) >= 2 and response[-2:] != b"\x6f\x00"
