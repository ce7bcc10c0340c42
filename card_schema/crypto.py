"""Security primitives of the card: AES-128 CMAC and NXP AN10922 key diversification.

- CMAC is NIST SP 800-38B, computed by pyca/cryptography; nothing here re-implements AES.
- Key diversification is NXP AN10922 section 2.2 (AES-128): the per-card key is a CMAC-like MAC of
  ``0x01 || diversification input`` under the master key, where the message is always padded to 32
  bytes (two AES blocks), which makes short inputs differ from a plain CMAC.

Keys are always passed in; this module holds no key and reads no global.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from card_schema.errors import SchemaError, VerificationError

BLOCK = 16
_RB = 0x87  # SP 800-38B: R_128 constant for subkey generation


def _check_key(key: bytes) -> None:
    if len(key) != BLOCK:
        raise SchemaError(f"an AES-128 key is 16 bytes, got {len(key)}", field="key")


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """AES-128 CMAC of ``message`` (NIST SP 800-38B), 16 bytes."""
    _check_key(key)
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def aes_cmac_many(key: bytes, messages: Sequence[bytes]) -> list[bytes]:
    """AES-128 CMAC of each of ``messages`` under one key: ``[aes_cmac(key, m) for m in ...]``.

    The same NIST SP 800-38B computation, run on all the messages of one length at once: CBC
    over message ``i`` is sequential, but block ``b`` of every message goes through ONE AES-ECB
    call, and the XORs are done on whole rows as integers. AES itself is pyca/cryptography's;
    what this saves is the per-message cost of a CMAC object (a batch of 500 records checked
    by one SAM key costs a few ECB calls instead of 500 CMAC contexts).
    ``tests/card_schema/test_crypto.py`` checks it against :func:`aes_cmac` and RFC 4493.
    """
    _check_key(key)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    k1, k2 = cmac_subkeys(key)
    tags: list[bytes] = [b""] * len(messages)
    by_length: dict[int, list[int]] = {}
    for index, message in enumerate(messages):
        by_length.setdefault(len(message), []).append(index)
    for length, indexes in by_length.items():
        blocks = max(1, -(-length // BLOCK))
        size = blocks * BLOCK
        if length and length % BLOCK == 0:
            padding, last_key = b"", k1
        else:
            padding, last_key = b"\x80" + bytes(size - length - 1), k2
        count = len(indexes)
        # Every message padded, its last block XORed with the subkey, side by side.
        rows = _xor(
            b"".join(messages[i] + padding for i in indexes),
            (bytes(size - BLOCK) + last_key) * count,
        )
        state = bytes(BLOCK * count)
        for block in range(blocks):
            start = block * BLOCK
            column = b"".join(
                rows[offset : offset + BLOCK] for offset in range(start, len(rows), size)
            )
            state = encryptor.update(_xor(state, column))
        for position, index in enumerate(indexes):
            tags[index] = state[position * BLOCK : (position + 1) * BLOCK]
    return tags


def _xor(left: bytes, right: bytes) -> bytes:
    """Bytewise XOR of two equally long byte strings (as integers: C speed on long rows)."""
    value = int.from_bytes(left, "big") ^ int.from_bytes(right, "big")
    return value.to_bytes(len(left), "big")


def verify_cmac(key: bytes, message: bytes, tag: bytes) -> None:
    """Check a (possibly truncated) CMAC tag in constant time.

    Raises:
        VerificationError: the tag does not match.
    """
    if not tag or not hmac.compare_digest(aes_cmac(key, message)[: len(tag)], tag):
        raise VerificationError("CMAC does not verify")


def _aes_ecb_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _shift_left(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    return (value & ((1 << 128) - 1)).to_bytes(BLOCK, "big")


def cmac_subkeys(key: bytes) -> tuple[bytes, bytes]:
    """CMAC subkeys K1, K2 (SP 800-38B section 6.1), needed by AN10922's fixed-length padding."""
    _check_key(key)
    return subkeys_from_l(_aes_ecb_block(key, bytes(BLOCK)))


def subkeys_from_l(l_block: bytes) -> tuple[bytes, bytes]:
    """K1, K2 from ``L = AES(K, 0^128)`` (SP 800-38B 6.1), for keys kept in a token (PKCS#11)
    where only ``L`` can be asked for."""
    k1 = _shift_left(l_block)
    if l_block[0] & 0x80:
        k1 = k1[:-1] + bytes([k1[-1] ^ _RB])
    k2 = _shift_left(k1)
    if k1[0] & 0x80:
        k2 = k2[:-1] + bytes([k2[-1] ^ _RB])
    return k1, k2


def diversify_an10922(master_key: bytes, diversification_input: bytes) -> bytes:
    """AES-128 key diversification, NXP AN10922 section 2.2.1.

    Args:
        master_key: the 16-byte master key (in production it never leaves the SAM or HSM; this
            function is what the emulated SAM and the tests run).
        diversification_input: 1 to 31 bytes, typically card serial || application id || system id.

    Returns:
        The 16-byte diversified key.
    """
    check_an10922_input(diversification_input)
    _check_key(master_key)
    first, second = an10922_blocks(_aes_ecb_block(master_key, bytes(BLOCK)), diversification_input)
    encryptor = Cipher(algorithms.AES(master_key), modes.CBC(bytes(BLOCK))).encryptor()
    return (encryptor.update(first + second) + encryptor.finalize())[-BLOCK:]


def check_an10922_input(diversification_input: bytes) -> None:
    """Raises :class:`SchemaError` unless the input is 1 to 31 bytes (AN10922 2.2.1)."""
    if not 1 <= len(diversification_input) <= 31:
        raise SchemaError("AN10922 input is 1 to 31 bytes", field="diversification_input")


def an10922_blocks(l_block: bytes, diversification_input: bytes) -> tuple[bytes, bytes]:
    """AN10922 2.2.1: the two message blocks, the second already XORed with K1 or K2.

    The diversified key is the last block of their AES-CBC (zero IV) under the master key.
    Only ``L = AES(master, 0^128)`` is needed here, so a token that keeps the master key
    (SoftHSM2 in the backend and the SAM) computes ``L`` and the CBC, and this builds the rest.

    Raises:
        SchemaError: the input is not 1 to 31 bytes.
    """
    check_an10922_input(diversification_input)
    k1, k2 = subkeys_from_l(l_block)
    message = bytes([0x01]) + diversification_input
    if len(message) == 2 * BLOCK:
        last_key = k1
    else:
        # AN10922: pad with 0x80 00.. to 32 bytes and use K2, even where one block would do.
        message = message + b"\x80" + bytes(2 * BLOCK - len(message) - 1)
        last_key = k2
    return message[:BLOCK], _xor(message[BLOCK:], last_key)


class KeyRole(Enum):
    """What a key allows on a card application (Calypso's three access levels)."""

    ISSUER = "issuer"  # personalisation: environment, holder, application structure
    LOAD = "load"  # loading: contracts, reloads, aid credits, rights
    DEBIT = "debit"  # validation: events, counter decreases, SV debits

    @property
    def kif(self) -> int:
        """Key identifier byte used in APDUs (Calypso KIF values for issuer, load, debit)."""
        return {KeyRole.ISSUER: 0x21, KeyRole.LOAD: 0x27, KeyRole.DEBIT: 0x30}[self]

    @property
    def key_index(self) -> int:
        """Calypso key index in Open Secure Session P1: 1 issuer, 2 load, 3 debit."""
        return {KeyRole.ISSUER: 1, KeyRole.LOAD: 2, KeyRole.DEBIT: 3}[self]

    @classmethod
    def from_key_index(cls, index: int) -> KeyRole:
        for role in cls:
            if role.key_index == index:
                return role
        raise SchemaError(f"unknown key index {index}", field="key_index")

    @classmethod
    def from_kif(cls, kif: int) -> KeyRole:
        for role in cls:
            if role.kif == kif:
                return role
        raise SchemaError(f"unknown key identifier 0x{kif:02X}", field="kif")


@dataclass(frozen=True, order=True)
class KeyRef:
    """Names one master key: which application, which role, which version (rotation).

    The label is how the key is found in a key file or a PKCS#11 token; the key value itself never
    travels with this reference.
    """

    application: str
    role: KeyRole
    version: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 0xFF:
            raise SchemaError("key version is one byte", field="version")

    @property
    def label(self) -> str:
        return f"{self.application}.{self.role.value}.v{self.version}"

    @classmethod
    def from_label(cls, label: str) -> KeyRef:
        try:
            application, role, version = label.split(".")
            return cls(application, KeyRole(role), int(version.removeprefix("v")))
        except ValueError as exc:
            raise SchemaError(f"bad key label {label!r}", field="label") from exc


def card_key(master_key: bytes, card_serial: bytes, application_id: bytes) -> bytes:
    """Per-card key of one application: AN10922 over serial || application id (first 31 bytes)."""
    return diversify_an10922(master_key, (card_serial + application_id)[:31])
