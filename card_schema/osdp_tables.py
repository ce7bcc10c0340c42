"""The gate's OSDP wire contract: what each output, input, LED and file means.

OSDP (IEC 60839-11-5) fixes the frames; which output drives what, and the manufacturer-specific
(``osdp_MFG``) exchanges, are ours. The host (``firmware_host.osdp``) and the emulated barrier
controller (``hardware.osdp_peripheral``) may not import each other, so the one copy of these
tables lives here, in the pure layer both sit on.

Control codes are the ones of the OSDP 2.2 command tables (§6.7 OUT, §6.8 LED, §6.9 BUZ, §6.10
TEXT). Timer units are 100 ms.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

#: Vendor code (IEEE OUI, 3 bytes) the gate uses in ``osdp_MFG`` / ``osdp_MFGREP``.
VENDOR_CODE = 0x52_43_48  # "RCH": regioncard Hauts-de-France, private use

#: OSDP address of the barrier controller on the gate's RS-485 line.
DEFAULT_ADDRESS = 101


class Output(IntEnum):
    """Output numbers of the barrier controller."""

    BARRIER = 0  # relay of the barrier motor: energised = open


class Input(IntEnum):
    """Input numbers, in the order of the input status report (one byte each, 1 = active)."""

    PASSAGE_SENSOR = 0  # light curtain in the gate: active while someone is in it


class LocalStatus(IntEnum):
    """Byte positions in the local status report (OSDP ``osdp_LSTATR``)."""

    TAMPER = 0
    POWER = 1


class OutputControl(IntEnum):
    """``osdp_OUT`` control codes (OSDP 2.2 table 22)."""

    NOP = 0
    OFF_ABORT_TIMED = 1
    ON_ABORT_TIMED = 2
    OFF_AFTER_TIMED = 3
    ON_AFTER_TIMED = 4
    ON_TIMED = 5  # on for timer_count x 100 ms, then off
    OFF_TIMED = 6


class TextControl(IntEnum):
    """``osdp_TEXT`` control codes (OSDP 2.2 table 30)."""

    PERMANENT = 1
    PERMANENT_WRAP = 2
    TEMPORARY = 3
    TEMPORARY_WRAP = 4


class LEDControl(IntEnum):
    """``osdp_LED`` control codes, shared meaning for the temporary and permanent parts."""

    NOP = 0
    SET = 1  # permanent part: set; temporary part: cancel
    SET_TEMPORARY = 2


class BuzzerTone(IntEnum):
    """``osdp_BUZ`` tone codes."""

    NONE = 0
    OFF = 1
    DEFAULT = 2


class MfgCommand(IntEnum):
    """First data byte of our ``osdp_MFG`` commands; the ``osdp_MFGREP`` echoes it."""

    STAGING_STATUS = 0x01  # -> staged byte count and image tag, to resume a firmware transfer
    BEGIN_TRANSFER = 0x02  # tag, total size, offset the next file transfer starts at
    FIRMWARE_STATUS = 0x03  # -> running version and result of the last update


class UpdateResult(IntEnum):
    """Result of the last firmware update, reported by ``FIRMWARE_STATUS``."""

    NONE = 0
    INSTALLED = 1
    BAD_SIGNATURE = 2
    MALFORMED = 3
    IN_PROGRESS = 4


#: OSDP file-transfer file id of a firmware image (``osdp_FILETRANSFER`` FtType).
FILE_ID_FIRMWARE = 0x01

#: Length of the image tag: the first bytes of SHA-256 over the whole signed image.
IMAGE_TAG_LENGTH = 8


def image_tag(image: bytes) -> bytes:
    """Short identifier of an image, used to match a staged prefix with the image being resumed.

    The control panel sends it when a transfer begins; the peripheral compares it with what it
    staged: both ends take it from here.
    """
    return hashlib.sha256(image).digest()[:IMAGE_TAG_LENGTH]
