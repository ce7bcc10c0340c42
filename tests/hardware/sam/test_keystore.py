"""Master key stores: the JSON key file and the PKCS#11 token (SoftHSM2, no mock) agree."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from samkit import CARD_SERIAL, demo_master_keys, key_file_store

from card_schema.crypto import KeyRef, KeyRole, card_key, diversify_an10922
from card_schema.layout import CARD_LAYOUT
from hardware.sam.keystore import (
    KeyFileStore,
    KeyStoreError,
    PKCS11KeyStore,
    demo_key_refs,
    new_key_file,
)
from hardware.sam.softhsm import SoftHSMToken


def test_new_key_file_is_private_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = KeyFileStore.load(path)
    assert store.labels() == sorted(ref.label for ref in demo_key_refs())
    assert len(store.labels()) == len(CARD_LAYOUT.applications) * 3 + 1
    with pytest.raises(KeyStoreError):
        new_key_file(path)  # never overwrites master keys


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{}",
        '{"format": "other", "keys": {}}',
        '{"format": "regioncard-master-keys/1"}',
        '{"format": "regioncard-master-keys/1", "keys": {"plum.debit.v1": "00"}}',
        '{"format": "regioncard-master-keys/1", "keys": {"nolabel": "' + "00" * 16 + '"}}',
    ],
)
def test_bad_key_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeyStoreError):
        KeyFileStore.load(path)


def test_key_file_diversification_is_an10922() -> None:
    store = key_file_store()
    ref = KeyRef("plum", KeyRole.DEBIT, 1)
    master = demo_master_keys()[ref.label]
    plum = CARD_LAYOUT.application("plum")
    assert store.diversify(ref, CARD_SERIAL + plum.aid) == card_key(master, CARD_SERIAL, plum.aid)
    with pytest.raises(KeyStoreError):
        store.diversify(KeyRef("plum", KeyRole.DEBIT, 2), b"x")


@pytest.mark.integration
def test_token_and_key_file_give_identical_keys(token_store: PKCS11KeyStore) -> None:
    files = key_file_store()
    assert set(token_store.labels()) == set(files.labels())
    inputs = [b"\x01", CARD_SERIAL + b"1TIC.ICA", bytes(range(30)), bytes(range(31))]
    for ref in demo_key_refs():
        for data in inputs:
            assert token_store.diversify(ref, data) == files.diversify(ref, data)
            assert token_store.diversify(ref, data) == diversify_an10922(
                demo_master_keys()[ref.label], data
            )


@pytest.mark.integration
def test_token_keys_never_leave_the_token(softhsm_token: SoftHSMToken) -> None:
    import pkcs11

    token = pkcs11.lib(softhsm_token.library).get_token(token_label=softhsm_token.label)
    with token.open(user_pin=softhsm_token.user_pin) as session:
        key = session.get_key(label="plum.debit.v1", key_type=pkcs11.KeyType.AES)
        assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
        with pytest.raises(pkcs11.PKCS11Error):
            key[pkcs11.Attribute.VALUE]


@pytest.mark.integration
def test_token_errors(softhsm_token: SoftHSMToken, token_store: PKCS11KeyStore) -> None:
    with pytest.raises(KeyStoreError):
        token_store.diversify(KeyRef("plum", KeyRole.DEBIT, 9), b"x")
    with pytest.raises(KeyStoreError):
        PKCS11KeyStore(softhsm_token.library, "no-such-token", "1234")
    with pytest.raises(KeyStoreError):
        PKCS11KeyStore(softhsm_token.library, softhsm_token.label, "0000")


def test_key_file_is_json_with_hex_values(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path, [KeyRef("plum", KeyRole.DEBIT, 3)])
    doc = json.loads(path.read_text())
    assert (
        list(doc["keys"]) == ["plum.debit.v3"]
        and len(bytes.fromhex(doc["keys"]["plum.debit.v3"])) == 16
    )
