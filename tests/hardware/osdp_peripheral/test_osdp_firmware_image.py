"""Signed firmware images and the controller's flash (in-process; the OSDP path is tested with
the gate in tests/firmware_host/osdp/test_osdp_gate.py)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.errors import VerificationError
from card_schema.osdp_tables import UpdateResult, image_tag
from hardware.osdp_peripheral.errors import FirmwareFormatError
from hardware.osdp_peripheral.firmware import (
    FirmwareFlash,
    sign_image,
    verify_image,
)


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_signed_image_verifies_and_yields_version_and_payload(
    signing_key: Ed25519PrivateKey,
) -> None:
    payload = os.urandom(300)
    image = verify_image(signing_key.public_key(), sign_image(signing_key, 0x020304, payload))
    assert image.version == 0x020304
    assert image.payload == payload


@pytest.mark.parametrize("position", [0, 9, 20, -1])
def test_any_flipped_byte_is_refused(signing_key: Ed25519PrivateKey, position: int) -> None:
    image = bytearray(sign_image(signing_key, 2, os.urandom(64)))
    image[position] ^= 0x01
    with pytest.raises((VerificationError, FirmwareFormatError)):
        verify_image(signing_key.public_key(), bytes(image))


def test_image_signed_with_another_key_is_refused(signing_key: Ed25519PrivateKey) -> None:
    image = sign_image(Ed25519PrivateKey.generate(), 2, b"code")
    with pytest.raises(VerificationError):
        verify_image(signing_key.public_key(), image)


def test_truncated_image_is_malformed(signing_key: Ed25519PrivateKey) -> None:
    image = sign_image(signing_key, 2, b"code" * 10)
    with pytest.raises(FirmwareFormatError):
        verify_image(signing_key.public_key(), image[:-1])


def _transfer(flash: FirmwareFlash, image: bytes, offset: int, chunk: int = 100) -> None:
    flash.begin(image_tag(image), len(image), offset)
    flash.open_session(len(image) - offset)
    for start in range(0, len(image) - offset, chunk):
        part = image[offset + start : offset + start + chunk]
        assert flash.write(part, start) == len(part)


def test_flash_installs_a_good_image_and_keeps_the_old_one_on_a_bad_signature(
    signing_key: Ed25519PrivateKey,
) -> None:
    flash = FirmwareFlash(signing_key.public_key(), running_version=1)
    bad = sign_image(Ed25519PrivateKey.generate(), 9, b"evil")
    _transfer(flash, bad, 0)
    assert flash.close_session() is UpdateResult.BAD_SIGNATURE
    assert flash.running_version == 1

    good = sign_image(signing_key, 2, b"good code")
    _transfer(flash, good, 0)
    assert flash.close_session() is UpdateResult.INSTALLED
    assert (flash.running_version, flash.running_payload) == (2, b"good code")


def test_flash_keeps_a_cut_transfer_and_resumes_it(signing_key: Ed25519PrivateKey) -> None:
    flash = FirmwareFlash(signing_key.public_key(), running_version=1)
    image = sign_image(signing_key, 3, os.urandom(1000))
    flash.begin(image_tag(image), len(image), 0)
    flash.open_session(len(image))
    flash.write(image[:400], 0)
    assert flash.close_session() is UpdateResult.IN_PROGRESS  # cut: nothing installed
    assert (flash.staged_length, flash.staged_tag) == (400, image_tag(image))

    with pytest.raises(FirmwareFormatError):  # resuming elsewhere than the staged end
        flash.begin(image_tag(image), len(image), 300)
    _transfer(flash, image, 400)
    assert flash.close_session() is UpdateResult.INSTALLED
    assert flash.running_version == 3
    assert flash.session_offsets == [0, 400]
