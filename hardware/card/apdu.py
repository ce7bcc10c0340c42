"""Command APDU parsing, the status-word table and the APDU trace, shared by the card and SAM.

ISO/IEC 7816-4 section 5.1 (command-response pairs): a command is ``CLA INS P1 P2`` followed by
nothing (case 1), ``Le`` (case 2), ``Lc data`` (case 3) or ``Lc data Le`` (case 4). The emulated
chips accept short length fields only; an extended-length command (``Lc`` byte ``00`` followed by
more bytes) is refused with ``6700`` like a Calypso card does.

Parsing never raises anything but :class:`CommandRefused`, which carries the status word the chip
answers with; the chips turn it into the two SW bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from card_schema.errors import RegionCardError

SHORT_MAX = 256  # Le = 00 in a short APDU means "up to 256 bytes"


class SW(IntEnum):
    """Status words the emulated card and SAM answer (ISO/IEC 7816-4 section 5.6, Calypso usage).

    The meaning of each word is in :data:`SW_MEANINGS`; terminals keep their own per-command table.
    """

    OK = 0x9000
    PARTIAL = 0x6200  # Read Record Multiple: the answer holds only the first records
    INVALIDATED = 0x6283
    SESSION_BUFFER_FULL = 0x6400
    TRANSACTION_COUNTER_EXHAUSTED = 0x6900
    WRONG_LENGTH = 0x6700
    FILE_TYPE_MISMATCH = 0x6981
    SECURITY_NOT_SATISFIED = 0x6982
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    INCORRECT_SIGNATURE = 0x6988
    WRONG_DATA = 0x6A80
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    INCORRECT_P1P2 = 0x6A81  # Calypso SV Get / Open Secure Session: P1 or P2 not supported
    LE_INCONSISTENT = 0x6A86  # Calypso SV Get: Le inconsistent with P2
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    WRONG_LE = 0x6C00  # 6Cxx: SW2 gives the exact length available
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @property
    def meaning(self) -> str:
        """What the status word says, in words."""
        return SW_MEANINGS[self]

    def to_bytes_sw(self, sw2: int | None = None) -> bytes:
        """SW1 SW2 bytes; ``sw2`` overrides the second byte (``6Cxx``)."""
        value = self.value if sw2 is None else (self.value & 0xFF00) | sw2
        return value.to_bytes(2, "big")


SW_MEANINGS: dict[SW, str] = {
    SW.OK: "command completed",
    SW.PARTIAL: "partial answer: more records follow (Read Record Multiple)",
    SW.INVALIDATED: "selected application is invalidated (selection still done)",
    SW.SESSION_BUFFER_FULL: "session buffer full: the modifications exceed the declared budget",
    SW.TRANSACTION_COUNTER_EXHAUSTED: "transaction counter is 0: no more secure sessions",
    SW.WRONG_LENGTH: "wrong length: Lc or Le does not fit the command, extended length, truncated",
    SW.FILE_TYPE_MISMATCH: "command incompatible with the file structure",
    SW.SECURITY_NOT_SATISFIED: "security status not satisfied: no session or wrong key role",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied (never access, invalidated...)",
    SW.NO_CURRENT_EF: "command not allowed: no current elementary file",
    SW.INCORRECT_SIGNATURE: "incorrect signature or MAC",
    SW.WRONG_DATA: "incorrect data, or counter / balance overflow or underflow",
    SW.FILE_NOT_FOUND: "file or application not found",
    SW.RECORD_NOT_FOUND: "record not found",
    SW.INCORRECT_P1P2: "incorrect P1 or P2 (function not supported)",
    SW.LE_INCONSISTENT: "Le inconsistent with P1-P2",
    SW.REFERENCED_DATA_NOT_FOUND: "referenced data (key, data object) not found",
    SW.WRONG_P1P2: "wrong parameters P1-P2",
    SW.WRONG_LE: "wrong Le: SW2 gives the exact number of bytes available",
    SW.INS_NOT_SUPPORTED: "instruction code not supported",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.NO_PRECISE_DIAGNOSIS: "no precise diagnosis (internal error of the emulator)",
}


class CommandRefused(RegionCardError):
    """A command cannot be executed; the chip answers ``sw`` (never leaves the emulator)."""

    def __init__(self, sw: SW, message: str = "", *, sw2: int | None = None) -> None:
        self.sw = sw
        self.sw2 = sw2
        super().__init__(message or sw.meaning)

    @property
    def sw_bytes(self) -> bytes:
        return self.sw.to_bytes_sw(self.sw2)


@dataclass(frozen=True)
class CommandAPDU:
    """One parsed short command APDU.

    Attributes:
        cla: class byte.
        ins: instruction byte.
        p1: first parameter.
        p2: second parameter.
        data: command data (empty for cases 1 and 2).
        le: expected response length as sent (``None`` when absent; ``0`` stands for 256).
        raw: the bytes as received (what the secure-session digest covers).
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None
    raw: bytes

    @property
    def ne(self) -> int:
        """Maximum number of response bytes the reader accepts (ISO 7816-4 ``Ne``)."""
        if self.le is None or self.le == 0:
            return SHORT_MAX
        return self.le

    def require_no_data(self) -> None:
        """Refuse command data where the command takes none."""
        if self.data:
            raise CommandRefused(SW.WRONG_LENGTH, "this command takes no data")

    def require_data(self, minimum: int = 1, maximum: int = 255) -> bytes:
        """The command data, refused with ``6700`` when its length is out of range."""
        if not minimum <= len(self.data) <= maximum:
            raise CommandRefused(SW.WRONG_LENGTH, f"data length {len(self.data)} out of range")
        return self.data


def parse_apdu(raw: bytes) -> CommandAPDU:
    """Split a short command APDU into its fields (ISO/IEC 7816-4 section 5.1, cases 1 to 4).

    Raises:
        CommandRefused: ``6700`` for a truncated APDU, a length byte that does not match the
            data, or an extended-length APDU.
    """
    if len(raw) < 4:
        raise CommandRefused(SW.WRONG_LENGTH, "truncated APDU")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    body = raw[4:]
    if not body:
        return CommandAPDU(cla, ins, p1, p2, b"", None, bytes(raw))
    if len(body) == 1:
        return CommandAPDU(cla, ins, p1, p2, b"", body[0], bytes(raw))
    lc = body[0]
    if lc == 0:
        raise CommandRefused(SW.WRONG_LENGTH, "extended length APDUs are not supported")
    if len(body) == 1 + lc:
        return CommandAPDU(cla, ins, p1, p2, bytes(body[1:]), None, bytes(raw))
    if len(body) == 2 + lc:
        return CommandAPDU(cla, ins, p1, p2, bytes(body[1:-1]), body[-1], bytes(raw))
    raise CommandRefused(SW.WRONG_LENGTH, "Lc does not match the data length")


def digested_command(raw: bytes) -> bytes:
    """The form of a command APDU a secure-session digest takes: a case 4 command without Le.

    Calypso digests the command as the card received it minus the trailing ``Le`` of a command
    that carries both data and ``Le`` (the reference's terminal does the same before giving the
    command to the SAM). Other cases are digested whole.
    """
    if len(raw) > 5 and raw[4] != 0 and len(raw) == 6 + raw[4]:
        return raw[:-1]
    return raw


Handler = TypeVar("Handler")


def handler_for(
    cmd: CommandAPDU, classes: frozenset[int], handlers: Mapping[int, Handler]
) -> Handler:
    """The handler of ``cmd``'s instruction, after checking its class.

    Raises:
        CommandRefused: class not accepted (6E00) or instruction not supported (6D00).
    """
    if cmd.cla not in classes:
        raise CommandRefused(SW.CLA_NOT_SUPPORTED)
    handler = handlers.get(cmd.ins)
    if handler is None:
        raise CommandRefused(SW.INS_NOT_SUPPORTED)
    return handler
