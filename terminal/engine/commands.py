"""Card command APDUs (docs/emulated-card.md "Card command set"), built in one place.

Every command that returns data asks for ``Le = 00`` (up to 256 bytes) so that the card never
answers ``6Cxx`` and the reader never re-sends a command (a re-sent command inside a secure session
would be digested twice by the card).
"""

from __future__ import annotations

from dataclasses import dataclass

from card_schema.layout import COUNTER_SIZE
from terminal.engine.status import CardCommand

CLA = 0x00
READ_ONE, READ_MULTIPLE = 0x04, 0x05
CLOSE_RATIFY_NOW, CLOSE_RATIFY_LATER = 0x80, 0x00
SV_GET_RELOAD, SV_GET_DEBIT = 0x07, 0x09
INS_SV_DEBIT, INS_SV_RELOAD, INS_SV_UNDEBIT = 0xBA, 0xB8, 0xBC


def _apdu(ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    apdu = bytes([CLA, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le])
    return apdu


def select_application(df_name: bytes) -> bytes:
    """Select by DF name, FCI returned."""
    return _apdu(0xA4, 0x04, 0x00, df_name, 0x00)


def get_data_traceability() -> bytes:
    """Get Data ``01 85``: serial and transaction counter."""
    return _apdu(0xCA, 0x01, 0x85, le=0x00)


def read_records(sfi: int, first: int, *, multiple: bool = True) -> bytes:
    """Read Record (one) or Read Records (``first`` to the last that fits 256 bytes)."""
    return _apdu(0xB2, first, (sfi << 3) | (READ_MULTIPLE if multiple else READ_ONE), le=0x00)


def update_record(sfi: int, record: int, data: bytes) -> bytes:
    """Update Record ``record`` of file ``sfi``."""
    return _apdu(0xDC, record, (sfi << 3) | READ_ONE, data)


def append_record(sfi: int, data: bytes) -> bytes:
    """Append Record to the cyclic file ``sfi``."""
    return _apdu(0xE2, 0x00, sfi << 3, data)


def change_counter(increase: bool, sfi: int, counter: int, amount: int) -> bytes:
    """Increase or Decrease counter ``counter`` of the counters file ``sfi`` by ``amount``."""
    return _apdu(
        0x32 if increase else 0x30,
        counter,
        sfi << 3,
        amount.to_bytes(COUNTER_SIZE, "big"),
        0x00,
    )


def open_secure_session(kif: int, challenge: bytes, sfi: int = 0, record: int = 0) -> bytes:
    """Open Secure Session with the SAM challenge, reading ``record`` of ``sfi`` (0: none)."""
    return _apdu(0x8A, record, sfi << 3 if record else 0, bytes([kif]) + challenge, 0x00)


def close_secure_session(signature: bytes, *, ratify_now: bool) -> bytes:
    """Close Secure Session with the terminal signature."""
    p1 = CLOSE_RATIFY_NOW if ratify_now else CLOSE_RATIFY_LATER
    return _apdu(0x8E, p1, 0x00, signature, 0x00)


def cancel_secure_session() -> bytes:
    """Close Secure Session without signature: the card drops the session on purpose."""
    return _apdu(0x8E, 0x00, 0x00)


def ratification() -> bytes:
    """The ratification command (Calypso ``B2 00 00 00``)."""
    return bytes([CLA, 0xB2, 0x00, 0x00, 0x00])


def sv_get(debit: bool) -> bytes:
    """SV Get with the debit log (``09``) or the reload log (``07``)."""
    return _apdu(0x7C, 0x00, SV_GET_DEBIT if debit else SV_GET_RELOAD, le=0x00)


def sv_operation(ins: int, body: bytes, mac: bytes) -> bytes:
    """SV Debit / Reload / Undebit with its 11-byte body and the SAM's SV MAC."""
    return _apdu(ins, 0x00, 0x00, body + mac, 0x00)


def invalidate() -> bytes:
    """Invalidate the current application (in session)."""
    return _apdu(0x04, 0x00, 0x00)


def rehabilitate() -> bytes:
    """Rehabilitate the current application (in session)."""
    return _apdu(0x44, 0x00, 0x00)


@dataclass(frozen=True)
class PreparedCommand:
    """A card command queued by a ``prepare_*`` method, with what it does to the image.

    Attributes:
        command: which command.
        apdu: the APDU (``b""`` for SV operations, built when the SAM has given the MAC).
        file: file name concerned, if any.
        record: record or counter number concerned, if any.
        data: record data written, if any.
        amount: counter or SV amount, if any.
    """

    command: CardCommand
    apdu: bytes
    file: str | None = None
    record: int | None = None
    data: bytes = b""
    amount: int = 0
