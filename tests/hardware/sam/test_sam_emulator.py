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


def pso(record: bytes, *, mode: int = 0x68, kif: int = 0x2E, offset: int | None = None) -> bytes:
    """PSO Compute Signature: FF || KIF || KVC || mode || offset in bits (2) || message, the
    message being ``record`` then the 8 bytes of the SAM's trace data in full-serial mode (its
    serial and counter first)."""
    bits = len(record) * 8 if offset is None else offset
    data = bytes([0xFF, kif, 0x01, mode]) + bits.to_bytes(2, "big") + record + bytes(8)
    return apdu(0x2A, data, p1=0x9E, p2=0x9A)


def traceable(answer: bytes, record: bytes) -> bytes:
    """serial (4) || counter (3) || signature (8) from the answer: message || signature."""
    assert answer[: len(record)] == record
    assert answer[len(record) + 7] == 0  # the 8th trace byte stays as the terminal sent it
    return answer[len(record) : len(record) + 7] + answer[len(record) + 8 :]


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
    challenge = ok(sam, apdu(0x84, le=8))
    # Extended mode: P1 = key index 3 (debit), P2 = 02, data = 00 || challenge (8).
    opened = card.transmit(bytes([0x00, 0x8A, KeyRole.DEBIT.key_index, 0x02, 9, 0]) + challenge)
    assert opened[-2:] == OK
    ok(sam, apdu(0x14, CARD_SERIAL))
    ok(sam, apdu(0x8A, opened[9:11] + opened[:-2], p1=0x02, p2=0xFF))
    for command, digested in (
        (bytes.fromhex("00E2004003") + b"EVT", bytes.fromhex("00E2004003") + b"EVT"),
        (bytes.fromhex("003001C80300000100"), bytes.fromhex("003001C803000001")),  # no Le
    ):
        response = card.transmit(command)
        ok(sam, apdu(0x8C, digested))
        ok(sam, apdu(0x8C, response))
    signature = ok(sam, apdu(0x8E, le=8))
    outputs.append(signature)
    closed = card.transmit(b"\x00\x8e\x80\x00\x08" + signature + b"\x00")
    assert closed[-2:] == OK
    ok(sam, apdu(0x82, closed[:8]))
    outputs.append(closed[:8])
    outputs.append(ok(sam, pso(b"a transaction record")))
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
        (bytes.fromhex("8084000006"), 0x6700),  # Le is 04 or 08
        (bytes.fromhex("8084000000"), 0x6700),
        (bytes.fromhex("8084010008"), 0x6B00),
        (apdu(0x14, CARD_SERIAL + b"UNKNOWN"), 0x6700),  # a diversifier is 4 or 8 bytes
        (apdu(0x14, CARD_SERIAL[:6]), 0x6700),
        (apdu(0x8A, bytes(15), p2=0xFF), 0x6985),  # no diversifier, no challenge
        (apdu(0x8A, bytes(15)), 0x6B00),  # P2 is FF
        (apdu(0x8C, b"\x00"), 0x6985),  # no digest
        (apdu(0x8E, le=8), 0x6985),
        (apdu(0x82, bytes(8)), 0x6985),
        (apdu(0x54, bytes(18), p1=0x01, p2=0xFF), 0x6A80),  # SV Prepare: no SV Get header
        (  # SV Prepare outside a session: the card comes from Select Diversifier
            apdu(
                0x54,
                bytes.fromhex("7C00091E") + bytes(30) + bytes.fromhex("9000BA000014") + bytes(8),
                p1=0x01,
                p2=0xFF,
            ),
            0x6985,
        ),
        (apdu(0x54, bytes(18)), 0x6B00),  # SV Prepare is 01 FF
        (apdu(0x58, bytes(3)), 0x6985),  # SV Check: nothing prepared
        (apdu(0x58, bytes(8)), 0x6700),  # 3 or 6 bytes
        (apdu(0x2A, b"x", p1=0x9E, p2=0x9B), 0x6B00),
        (apdu(0x2A, p1=0x9E, p2=0x9A), 0x6700),
        (pso(b"x", mode=0x08), 0x6A80),  # normal mode: the emulated SAM signs traceably only
        (pso(b"x", mode=0x64), 0x6A80),  # 4-byte signature
        (pso(b"x", offset=3), 0x6A80),  # offset not on a byte
        (pso(b"x", offset=16), 0x6A80),  # serial and counter would run past the message
        (pso(b"x", kif=0x21), 0x6A83),  # not the signing key
        (pso(bytes(200)), 0x6A80),  # 207 bytes: more than the 206 of a traceable message
        (apdu(0xCA, p1=0x9F, p2=0x7F), 0x6A88),
    ],
)
def test_refusals(sam: EmulatedSAM, command: bytes, status: int) -> None:
    assert sam.transmit(command) == status.to_bytes(2, "big")


def _regular_open(kif: int, kvc: int, record: bytes = b"") -> bytes:
    """A regular-mode open answer: counter (3) || random (1) || ratified || KIF || KVC || record."""
    return b"\xff\xff\xff\x07\x00" + bytes([kif, kvc, len(record)]) + record


def test_digest_needs_a_known_key(sam: EmulatedSAM) -> None:
    debit = KeyRole.DEBIT.kif
    ok(sam, apdu(0x84, le=4))
    ok(sam, apdu(0x14, CARD_SERIAL))
    init = bytes([debit, 7]) + _regular_open(debit, 7)  # KVC 7: no such key
    assert sam.transmit(apdu(0x8A, init, p2=0xFF)) == b"\x6a\x83"
    ok(sam, apdu(0x84, le=4))
    init = bytes([debit, 1]) + _regular_open(debit, 1) + b"\x00"
    assert sam.transmit(apdu(0x8A, init, p2=0xFF)) == b"\x6a\x80"  # length mismatch
    extended_answer = b"\xff\xff\xff" + bytes(5) + bytes([0, debit, 1, 0])
    init = bytes([debit, 1]) + extended_answer
    assert sam.transmit(apdu(0x8A, init, p1=0x02, p2=0xFF)) == b"\x69\x85"  # 4-byte challenge
    init = bytes([debit, 2]) + _regular_open(debit, 1)
    assert sam.transmit(apdu(0x8A, init, p2=0xFF)) == b"\x6a\x80"  # KVC differs from the answer


@pytest.mark.parametrize("extended", [False, True])
def test_card_signature_is_checked_once(sam: EmulatedSAM, extended: bool) -> None:
    size = 8 if extended else 4
    debit = KeyRole.DEBIT.kif
    ok(sam, apdu(0x84, le=size))
    ok(sam, apdu(0x14, CARD_SERIAL))
    answer = b"\xff\xff\xff" + bytes(5 if extended else 1) + bytes([0, debit, 1, 0])
    ok(sam, apdu(0x8A, bytes([debit, 1]) + answer, p1=0x02 if extended else 0, p2=0xFF))
    assert sam.transmit(apdu(0x82, bytes(size))) == b"\x69\x85"  # digest not closed yet
    ok(sam, apdu(0x8C, b"\x00\xb2\x01\x3c\x00"))
    assert sam.transmit(apdu(0x8E, le=12 - size)) == b"\x67\x00"  # the other mode's length
    ok(sam, apdu(0x8E, le=size))
    assert sam.transmit(apdu(0x8C, b"late")) == b"\x69\x85"
    assert sam.transmit(apdu(0x82, bytes(12 - size))) == b"\x67\x00"
    assert sam.transmit(apdu(0x82, bytes(size))) == b"\x69\x88"
    assert sam.transmit(apdu(0x82, bytes(size))) == b"\x69\x85"  # no second try


def test_atr_is_a_calypso_sam_atr(sam: EmulatedSAM) -> None:
    atr = sam.power_on()
    # 3B 3F 96 00 || 80 5A || platform, type, subtype C1, issuer, version, revision || serial ||
    # 82 90 00 (Keyple's legacy SAM ATR pattern 3B(.{6}|.{10})805A(.{20})829000).
    assert atr[:6] == bytes.fromhex("3B3F9600805A")
    assert atr[8] == 0xC1
    assert atr[12:16] == SAM_SERIAL and atr[16:] == bytes.fromhex("829000")


def test_traceable_signatures(sam: EmulatedSAM) -> None:
    record = b"2026-11-27 gate 12 card 12345678"
    first = traceable(ok(sam, pso(record)), record)
    second = traceable(ok(sam, pso(record)), record)
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
        ok(sam, pso(b"r"))
    again = EmulatedSAM(key_file_store(), SAM_SERIAL, counter_file=counter_file)
    assert ok(again, pso(b"r"))[5:8] == b"\x00\x00\x03"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_fuzz_never_raises(commands: list[bytes]) -> None:
    sam = EmulatedSAM(key_file_store(), SAM_SERIAL)
    sam.power_on()
    for command in [apdu(0x84, le=8), apdu(0x14, CARD_SERIAL), *commands]:
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
    ok(sam, apdu(0x14, CARD_SERIAL))
    for cla, ins, (p1, p2), data, le in commands:
        command = bytes([cla, ins, p1, p2])
        command += (bytes([len(data)]) + data if data else b"") + (
            b"" if le is None else bytes([le])
        )
        response = sam.transmit(command)
        assert len(response) >= 2 and response[-2:] != b"\x6f\x00"
