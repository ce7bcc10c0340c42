"""AES-CMAC and AN10922 against the public vectors in ../shared/vectors (loaded as data)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from card_schema.crypto import (
    KeyRef,
    KeyRole,
    aes_cmac,
    aes_cmac_many,
    card_key,
    cmac_subkeys,
    diversify_an10922,
    verify_cmac,
)
from card_schema.errors import SchemaError, VerificationError


def test_cmac_subkeys_match_sp800_38b(shared_vectors: dict[str, Any]) -> None:
    vec = shared_vectors["aes_cmac"]
    k1, k2 = cmac_subkeys(bytes.fromhex(vec["key"]))
    assert k1.hex() == vec["subkey_k1"]
    assert k2.hex() == vec["subkey_k2"]


def test_cmac_vectors(shared_vectors: dict[str, Any]) -> None:
    vec = shared_vectors["aes_cmac"]
    key = bytes.fromhex(vec["key"])
    assert len(vec["cases"]) == 4
    for case in vec["cases"]:
        assert aes_cmac(key, bytes.fromhex(case["message"])).hex() == case["mac"]


def test_batched_cmac_vectors(shared_vectors: dict[str, Any]) -> None:
    vec = shared_vectors["aes_cmac"]
    key = bytes.fromhex(vec["key"])
    messages = [bytes.fromhex(case["message"]) for case in vec["cases"]]
    tags = aes_cmac_many(key, messages + messages[::-1])
    assert [tag.hex() for tag in tags] == [c["mac"] for c in vec["cases"] + vec["cases"][::-1]]


@given(
    st.binary(min_size=16, max_size=16),
    st.lists(st.binary(max_size=80), max_size=40),
)
def test_batched_cmac_is_the_cmac_of_each_message(key: bytes, messages: list[bytes]) -> None:
    assert aes_cmac_many(key, messages) == [aes_cmac(key, m) for m in messages]


def test_batched_cmac_checks_the_key_length() -> None:
    with pytest.raises(SchemaError):
        aes_cmac_many(bytes(15), [b"x"])


def test_verify_cmac_raises_on_a_wrong_tag(shared_vectors: dict[str, Any]) -> None:
    vec = shared_vectors["aes_cmac"]
    key = bytes.fromhex(vec["key"])
    case = vec["cases"][1]
    message, tag = bytes.fromhex(case["message"]), bytes.fromhex(case["mac"])
    verify_cmac(key, message, tag)
    verify_cmac(key, message, tag[:8])  # truncated MACs are how cards and SAMs carry them
    with pytest.raises(VerificationError):
        verify_cmac(key, message, bytes([tag[0] ^ 1]) + tag[1:])
    with pytest.raises(VerificationError):
        verify_cmac(key, message, b"")


def test_an10922_vectors(shared_vectors: dict[str, Any]) -> None:
    cases = shared_vectors["an10922_aes128"]
    assert len(cases) == 2
    for case in cases:
        key = diversify_an10922(
            bytes.fromhex(case["master_key"]), bytes.fromhex(case["diversification_input"])
        )
        assert key.hex() == case["diversified_key"], case["note"]


def test_an10922_short_input_differs_from_plain_cmac(shared_vectors: dict[str, Any]) -> None:
    case = shared_vectors["an10922_aes128"][1]
    master, data = bytes.fromhex(case["master_key"]), bytes.fromhex(case["diversification_input"])
    assert diversify_an10922(master, data) != aes_cmac(master, b"\x01" + data)


def test_an10922_full_length_input_is_plain_cmac() -> None:
    master = bytes(range(16))
    data = bytes(range(31))  # 0x01 || data is exactly 32 bytes: no padding, K1 as in CMAC
    assert diversify_an10922(master, data) == aes_cmac(master, b"\x01" + data)


@pytest.mark.parametrize("bad", [b"", bytes(32)])
def test_an10922_rejects_inputs_out_of_range(bad: bytes) -> None:
    with pytest.raises(SchemaError, match="diversification_input"):
        diversify_an10922(bytes(16), bad)


def test_wrong_key_length_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="key"):
        aes_cmac(bytes(8), b"x")


def test_card_keys_differ_per_card_and_application() -> None:
    master = bytes.fromhex("00112233445566778899aabbccddeeff")
    a = card_key(master, bytes.fromhex("0000000012345678"), b"1TIC.ICA")
    b = card_key(master, bytes.fromhex("0000000012345679"), b"1TIC.ICA")
    c = card_key(master, bytes.fromhex("0000000012345678"), b"HDF.CURSUS")
    assert len({a, b, c}) == 3


def test_key_ref_label_round_trip_and_kif() -> None:
    ref = KeyRef("plum", KeyRole.DEBIT, 2)
    assert ref.label == "plum.debit.v2"
    assert KeyRef.from_label(ref.label) == ref
    assert KeyRole.from_kif(KeyRole.LOAD.kif) is KeyRole.LOAD
    with pytest.raises(SchemaError):
        KeyRole.from_kif(0x99)
    with pytest.raises(SchemaError):
        KeyRef.from_label("nonsense")
