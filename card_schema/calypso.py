"""Calypso Rev 3 wire facts shared by the emulated chips and the terminal: startup information,
ATRs, key indexes, session modes.

Pure data and codecs, no IO. The facts (byte positions, bit meanings, the buffer-size table) are
those Eclipse Keyple's open-source Calypso terminal SDK records (docs/calypso-conformance.md
names the classes); the code is ours.

- :class:`StartupInfo`: the 7 bytes of Calypso startup information (FCI tag ``53``, and 6 of them
  in a contactless card's ATR): buffer-size index, platform, application type, subtype,
  software issuer, version, revision. :data:`SESSION_BUFFER_SIZES` turns the index into the
  session buffer byte budget (index 6 = 215 bytes).
- :func:`card_atr` / :func:`parse_card_atr`: ``3B 8F 80 01`` ‖ ``80 5A`` ‖ startup info without
  the buffer index (6) ‖ low 4 bytes of the serial ‖ ``82 90 00`` ‖ TCK.
- :func:`sam_atr` / :func:`parse_sam_atr`: ``3B 3F 96 00`` ‖ ``80 5A`` ‖ platform, type, subtype,
  issuer, version, revision ‖ serial (4) ‖ ``82 90 00``; :class:`SAMInfo` says the product (SAM
  C1 by subtype ``C1``), its digest buffer and whether it runs the Rev 3.2 extended mode.
- :class:`SessionMode`: regular (4-byte challenges and signatures) or extended (Rev 3.2: 8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from card_schema.errors import SchemaError

# Application type bits of the startup information (Calypso Rev 3).
APP_TYPE_PIN = 0x01
APP_TYPE_SV = 0x02
APP_TYPE_RATIFICATION_COMMAND_REQUIRED = 0x04
APP_TYPE_REV32_MODE = 0x08
APP_TYPE_PKI = 0x10
APP_TYPE_REV3 = 0x20  # application types 20h..7Fh are Calypso Prime Revision 3 products

SESSION_BUFFER_SIZES: tuple[int, ...] = (
    0, 0, 0, 0, 0, 0, 215, 256, 304, 362, 430, 512, 608, 724, 861, 1024, 1217, 1448, 1722, 2048,
    2435, 2896, 3444, 4096, 4870, 5792, 6888, 8192, 9741, 11585, 13777, 16384, 19483, 23170,
    27554, 32768, 38967, 46340, 55108, 65536, 77935, 92681, 110217, 131072, 155871, 185363,
    220435, 262144, 311743, 370727, 440871, 524288, 623487, 741455, 881743, 1048576,
)  # fmt: skip
"""Session buffer size in bytes by startup-information buffer-size index (06h..37h valid)."""

MODIFICATION_OVERHEAD = 6
"""Session buffer bytes a modifying command costs on top of its data length (Calypso Rev 3)."""


class SessionMode(Enum):
    """How a secure session is run: regular Rev 3, or the Rev 3.2 extended mode."""

    REGULAR = "regular"
    EXTENDED = "extended"

    @property
    def challenge_size(self) -> int:
        """SAM challenge in Open Secure Session (4 regular, 8 extended)."""
        return 8 if self is SessionMode.EXTENDED else 4

    @property
    def card_random_size(self) -> int:
        """Card random bytes after the transaction counter in the open answer (1 or 5)."""
        return 5 if self is SessionMode.EXTENDED else 1

    @property
    def signature_size(self) -> int:
        """Close Secure Session signatures, both ways (4 regular, 8 extended)."""
        return 8 if self is SessionMode.EXTENDED else 4

    @property
    def sv_signature_size(self) -> tuple[int, int]:
        """SV signatures: (terminal MAC in the SV command, card answer): (5, 3) or (10, 6)."""
        return (10, 6) if self is SessionMode.EXTENDED else (5, 3)

    @property
    def open_p2_mode(self) -> int:
        """Low bits of Open Secure Session P2 (``01`` regular, ``02`` extended)."""
        return 2 if self is SessionMode.EXTENDED else 1


@dataclass(frozen=True)
class StartupInfo:
    """Calypso startup information (FCI discretionary data, tag ``53``).

    Attributes:
        buffer_index: session buffer size index (:data:`SESSION_BUFFER_SIZES`), 06h..37h.
        platform: chip platform byte.
        application_type: bits :data:`APP_TYPE_PIN`, :data:`APP_TYPE_SV`...
        application_subtype: anything but ``00`` and ``FF`` (the reference refuses both).
        software_issuer: software issuer byte.
        software_version: software version byte.
        software_revision: software revision byte.
    """

    buffer_index: int
    platform: int
    application_type: int
    application_subtype: int
    software_issuer: int
    software_version: int
    software_revision: int

    def to_bytes(self) -> bytes:
        return bytes(
            [
                self.buffer_index,
                self.platform,
                self.application_type,
                self.application_subtype,
                self.software_issuer,
                self.software_version,
                self.software_revision,
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> StartupInfo:
        """Parse 7 bytes of startup information.

        Raises:
            SchemaError: not 7 bytes, buffer index out of 06h..37h, application type ``00``,
                subtype ``00`` or ``FF``.
        """
        if len(raw) != 7:
            raise SchemaError("startup information is 7 bytes", field="startup_info")
        info = cls(*raw)
        if not 0x06 <= info.buffer_index <= 0x37:
            raise SchemaError("buffer size index out of 06h..37h", field="startup_info")
        if info.application_type == 0x00:
            raise SchemaError("application type 00h", field="startup_info")
        if info.application_subtype in (0x00, 0xFF):
            raise SchemaError("application subtype 00h or FFh", field="startup_info")
        return info

    @property
    def session_buffer_bytes(self) -> int:
        """The session modification buffer, in bytes."""
        return SESSION_BUFFER_SIZES[self.buffer_index]

    @property
    def rev32_mode(self) -> bool:
        """Whether the card runs the Rev 3.2 extended mode."""
        return bool(self.application_type & APP_TYPE_REV32_MODE)

    @property
    def stored_value(self) -> bool:
        return bool(self.application_type & APP_TYPE_SV)

    @property
    def ratification_command_required(self) -> bool:
        return bool(self.application_type & APP_TYPE_RATIFICATION_COMMAND_REQUIRED)


def _with_tck(atr: bytes) -> bytes:
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    return atr + bytes([tck])


def card_atr(startup: StartupInfo, serial: bytes) -> bytes:
    """A Calypso card's ATR as a contactless PC/SC reader builds it.

    ``3B 8F 80 01`` ‖ historical bytes ``80 5A`` ‖ startup info without its buffer index (6) ‖
    low 4 bytes of the serial ‖ ``82 90 00`` ‖ TCK.
    """
    historical = b"\x80\x5a" + startup.to_bytes()[1:] + serial[-4:] + b"\x82\x90\x00"
    return _with_tck(b"\x3b\x8f\x80\x01" + historical)


@dataclass(frozen=True)
class CardATRInfo:
    """What a Calypso card ATR tells (field readers take the card number from it)."""

    startup_without_buffer: bytes  # platform, type, subtype, issuer, version, revision
    serial_low: bytes  # low 4 bytes of the serial


_CARD_ATR = re.compile(r"3B8F8001805A(.{12})(.{8})829000..")


def parse_card_atr(atr: bytes) -> CardATRInfo:
    """Parse a Calypso card ATR built as :func:`card_atr`.

    Raises:
        SchemaError: not a Calypso card ATR.
    """
    m = _CARD_ATR.fullmatch(atr.hex().upper())
    if m is None:
        raise SchemaError("not a Calypso card ATR", field="atr")
    return CardATRInfo(bytes.fromhex(m.group(1)), bytes.fromhex(m.group(2)))


SAM_SUBTYPE_C1 = 0xC1
SAM_SUBTYPES_S1DX = frozenset(range(0xD0, 0xD8))
"""ATR application subtypes of the SAM S1Dx family (D0h..D7h), class byte ``94``."""
SAM_DIGEST_BUFFER = {0xC1: 255, 0xE1: 240} | dict.fromkeys(SAM_SUBTYPES_S1DX, 70)
"""Digest data a SAM takes in one APDU, by ATR application subtype (C1, S1Dx, S1E1); an unknown
SAM gets 0 (the reference's value: no digest data length is known for it)."""


@dataclass(frozen=True)
class SAMInfo:
    """What a legacy Calypso SAM's ATR says.

    Attributes:
        platform, application_type, application_subtype, software_issuer, software_version,
        software_revision: the six bytes after ``80 5A``.
        serial: the SAM serial (4 bytes).
    """

    platform: int
    application_type: int
    application_subtype: int
    software_issuer: int
    software_version: int
    software_revision: int
    serial: bytes

    @property
    def product(self) -> str:
        """``SAM C1`` (``HSM C1`` when the issuer byte is ``08``), ``SAM S1Dx``, ``SAM S1E1``."""
        if self.application_subtype == SAM_SUBTYPE_C1:
            return "HSM C1" if self.software_issuer == 0x08 else "SAM C1"
        if self.application_subtype in SAM_SUBTYPES_S1DX:
            return "SAM S1Dx"
        if self.application_subtype == 0xE1:
            return "SAM S1E1"
        return "unknown"

    @property
    def digest_buffer(self) -> int:
        """Bytes of digest data one Digest Update (Multiple) APDU takes."""
        return SAM_DIGEST_BUFFER.get(self.application_subtype, 0)

    @property
    def extended_mode(self) -> bool:
        """Whether the SAM runs Rev 3.2 extended sessions (SAM C1 family)."""
        return self.application_subtype == SAM_SUBTYPE_C1

    @property
    def class_byte(self) -> int:
        """``80`` for the C1 and S1E1 families, ``94`` for S1Dx."""
        return 0x94 if self.application_subtype in SAM_SUBTYPES_S1DX else 0x80


def sam_atr(info: SAMInfo) -> bytes:
    """A legacy Calypso SAM ATR: ``3B 3F 96 00 80 5A`` ‖ six bytes ‖ serial ‖ ``82 90 00``.

    T0 ``3F`` announces TA1, TB1 and 15 historical bytes; T=0 only, so no TCK.
    """
    return (
        b"\x3b\x3f\x96\x00\x80\x5a"
        + bytes(
            [
                info.platform,
                info.application_type,
                info.application_subtype,
                info.software_issuer,
                info.software_version,
                info.software_revision,
            ]
        )
        + info.serial
        + b"\x82\x90\x00"
    )


_SAM_ATR = re.compile(r"3B(?:.{6}|.{10})805A(.{20})829000")


def parse_sam_atr(atr: bytes) -> SAMInfo:
    """Parse a legacy Calypso SAM ATR.

    Raises:
        SchemaError: the ATR is not a Calypso SAM's.
    """
    m = _SAM_ATR.match(atr.hex().upper())
    if m is None:
        raise SchemaError("not a Calypso SAM ATR", field="atr")
    b = bytes.fromhex(m.group(1))
    return SAMInfo(b[0], b[1], b[2], b[3], b[4], b[5], b[6:10])
