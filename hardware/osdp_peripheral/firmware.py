"""Signed firmware images of the emulated barrier controller, and the flash that stages them.

Image layout (all integers little-endian)::

    offset  size  field
    0       4     magic b"RCFW"
    4       1     format version (1)
    5       3     reserved, zero
    8       4     firmware version (the value reported in osdp_PDID)
    12      4     payload length N
    16      N     payload
    16+N    64    Ed25519 signature over bytes [0, 16+N)

Verification raises (:class:`~card_schema.errors.VerificationError`), never returns ``False``; the
public key is passed in, never read from a global.
"""

from __future__ import annotations

import logging
import struct
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from card_schema.errors import VerificationError
from card_schema.osdp_tables import IMAGE_TAG_LENGTH, UpdateResult
from hardware.osdp_peripheral.errors import FirmwareFormatError

log = logging.getLogger(__name__)

MAGIC = b"RCFW"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sB3xII")
SIGNATURE_LENGTH = 64
HEADER_LENGTH = _HEADER.size


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware image whose signature verified.

    Attributes:
        version: firmware version, as reported in the peripheral identification.
        payload: the code itself.
    """

    version: int
    payload: bytes


def sign_image(private_key: Ed25519PrivateKey, version: int, payload: bytes) -> bytes:
    """Build a signed image (the release tool's job; here for tests and the demo).

    Args:
        private_key: the firmware signing key.
        version: firmware version, 0..2**32-1.
        payload: the code.

    Returns:
        The complete image, signature last.
    """
    body = _HEADER.pack(MAGIC, FORMAT_VERSION, version, len(payload)) + payload
    return body + private_key.sign(body)


def parse_image(image: bytes) -> tuple[int, bytes, bytes, bytes]:
    """Split an image into (version, payload, signed body, signature) without verifying it.

    Raises:
        FirmwareFormatError: bad magic, unknown format version or inconsistent length.
    """
    if len(image) < HEADER_LENGTH + SIGNATURE_LENGTH:
        raise FirmwareFormatError(f"image too short: {len(image)} bytes")
    magic, fmt, version, length = _HEADER.unpack_from(image)
    if magic != MAGIC:
        raise FirmwareFormatError(f"bad magic {magic!r}")
    if fmt != FORMAT_VERSION:
        raise FirmwareFormatError(f"unknown image format {fmt}")
    if HEADER_LENGTH + length + SIGNATURE_LENGTH != len(image):
        raise FirmwareFormatError(
            f"length field says {length} payload bytes, image holds "
            f"{len(image) - HEADER_LENGTH - SIGNATURE_LENGTH}"
        )
    body = image[: HEADER_LENGTH + length]
    return version, image[HEADER_LENGTH : HEADER_LENGTH + length], body, image[len(body) :]


def verify_image(public_key: Ed25519PublicKey, image: bytes) -> FirmwareImage:
    """Check an image's format and Ed25519 signature.

    Args:
        public_key: the trusted firmware signing key.
        image: the complete image as received.

    Returns:
        The verified image.

    Raises:
        FirmwareFormatError: the image is not laid out as documented above.
        VerificationError: the signature does not verify under ``public_key``.
    """
    version, payload, body, signature = parse_image(image)
    try:
        public_key.verify(signature, body)
    except InvalidSignature as exc:
        raise VerificationError("firmware image signature does not verify") from exc
    return FirmwareImage(version=version, payload=payload)


class FirmwareFlash:
    """The controller's flash: the running image, and a staging area that survives link loss.

    A transfer writes into the staging area; only a complete image whose signature verifies
    replaces the running one. A refused image leaves the running one untouched. The staged prefix
    is kept when a transfer is cut, so the host can resume it from where it stopped.

    Args:
        public_key: trusted firmware signing key.
        running_version: version of the firmware the controller starts with.
    """

    def __init__(self, public_key: Ed25519PublicKey, running_version: int) -> None:
        self._public_key = public_key
        self._lock = threading.Lock()
        self.running_version = running_version
        self.running_payload = b""
        self.last_result = UpdateResult.NONE
        self._staged = bytearray()
        self._tag = b"\x00" * IMAGE_TAG_LENGTH
        self._expected_size = 0
        self._session_base = 0
        self.installed_count = 0
        self.bytes_written = 0
        self.session_offsets: list[int] = []  # where each transfer started, for supervision

    @property
    def staged_length(self) -> int:
        """Bytes of the current image already in the staging area."""
        with self._lock:
            return len(self._staged)

    @property
    def staged_tag(self) -> bytes:
        """Tag of the image being staged (zeros when none)."""
        with self._lock:
            return self._tag

    def begin(self, tag: bytes, total_size: int, offset: int) -> None:
        """Prepare the staging area for a transfer starting at ``offset`` of the image ``tag``.

        Raises:
            FirmwareFormatError: the host asks to resume at an offset the staging area does not
                hold for this image.
        """
        with self._lock:
            if offset == 0:
                self._staged = bytearray()
            elif (
                tag != self._tag or offset != len(self._staged) or total_size != self._expected_size
            ):
                raise FirmwareFormatError(
                    f"cannot resume at {offset}: staging holds {len(self._staged)} bytes "
                    f"of image {self._tag.hex()}"
                )
            self._tag = tag
            self._expected_size = total_size
            self._session_base = offset
            self.session_offsets.append(offset)
            self.last_result = UpdateResult.IN_PROGRESS
            log.info("firmware staging: image %s, %d bytes, from %d", tag.hex(), total_size, offset)

    def open_session(self, size: int) -> None:
        """Accept the file transfer announced with ``size`` bytes (the rest of the image)."""
        with self._lock:
            if self._session_base + size != self._expected_size:
                raise FirmwareFormatError(
                    f"transfer of {size} bytes from {self._session_base} does not end at "
                    f"{self._expected_size}"
                )

    def write(self, data: bytes, offset: int) -> int:
        """Store a chunk at ``offset`` of the current transfer; returns the bytes written."""
        with self._lock:
            position = self._session_base + offset
            if position > len(self._staged) or position + len(data) > self._expected_size:
                log.warning("firmware chunk at %d does not follow %d", position, len(self._staged))
                return -1
            del self._staged[position:]
            self._staged += data
            self.bytes_written += len(data)
            return len(data)

    def close_session(self) -> UpdateResult:
        """End of a transfer: install the image if it is complete and its signature verifies."""
        with self._lock:
            if len(self._staged) < self._expected_size:
                log.info(
                    "firmware transfer stopped at %d/%d bytes; staged prefix kept",
                    len(self._staged),
                    self._expected_size,
                )
                return self.last_result
            image = bytes(self._staged)
            self._staged = bytearray()
            self._tag = b"\x00" * IMAGE_TAG_LENGTH
            self._expected_size = 0
            try:
                verified = verify_image(self._public_key, image)
            except VerificationError:
                log.error(
                    "firmware image refused: bad signature; keeping version %#x",
                    self.running_version,
                )
                self.last_result = UpdateResult.BAD_SIGNATURE
                return self.last_result
            except FirmwareFormatError as exc:
                log.error(
                    "firmware image refused: %s; keeping version %#x", exc, self.running_version
                )
                self.last_result = UpdateResult.MALFORMED
                return self.last_result
            self.running_version = verified.version
            self.running_payload = verified.payload
            self.installed_count += 1
            self.last_result = UpdateResult.INSTALLED
            log.info("firmware version %#x installed", verified.version)
            return self.last_result
