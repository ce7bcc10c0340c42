"""Card command APDUs, built and parsed in one place (Calypso Rev 3, regular and 3.2 extended).

Builders (each returns the whole command APDU):

- :func:`select_application` (``00 A4 04 00``), :func:`get_data_traceability` (``01 85``),
- :func:`read_records` (``B2``), :func:`update_record` (``DC``), :func:`append_record` (``E2``),
  :func:`change_counter` (``32`` / ``30``),
- :func:`open_secure_session` (``8A``: P1 = record * 8 + key index, P2 = SFI * 8 + 1 regular /
  + 2 extended, data = SAM challenge (4) or ``00`` || challenge (8)),
- :func:`close_secure_session` (``8E``: signature 4 or 8 bytes), :func:`cancel_secure_session`
  (``8E 00 00`` Le ``00``), :func:`ratification` (``B2 00 00 00``),
- :func:`sv_get` (``7C``, P1 mode, exact Le), :func:`sv_partial` (the SV command for SV
  Prepare), :func:`sv_operation` (``B8`` / ``BA`` / ``BC``),
- :func:`invalidate` (``04``), :func:`rehabilitate` (``44``).

Parsers: :func:`parse_fci` -> :class:`FCI` (serial, startup information),
:func:`parse_sv_get` -> :class:`SVGetAnswer`, :func:`parse_close_answer` (postponed SV
signatures, card signature),
:func:`parse_open_secure_session` -> :class:`OpenSessionAnswer`, :func:`parse_records`
(Read Records answer), :func:`digest_form` (the form of a command the session digest takes: a
case 4 command without its ``Le``).

Status words are checked against :mod:`terminal.engine.status`, not here. Commands that return
data ask for ``Le = 00`` unless the reference sends a precise ``Le``.
"""

from __future__ import annotations

from dataclasses import dataclass

from card_schema.calypso import SessionMode, StartupInfo
from card_schema.errors import SchemaError
from card_schema.layout import COUNTER_SIZE
from terminal.engine.errors import EngineError
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


def read_records(sfi: int, first: int, *, multiple: bool = True, le: int = 0x00) -> bytes:
    """Read Record (one) or Read Records (``first`` to the last that fits 256 bytes).

    ``le``: the answer's exact length when known (one record: its size; several: each
    ``number || length || record``), as the reference sends it; ``00`` when unknown.
    """
    if not 0 <= le <= 0xFF:
        raise ValueError("Le is 00 to FF")
    return _apdu(0xB2, first, (sfi << 3) | (READ_MULTIPLE if multiple else READ_ONE), le=le)


def read_records_le(record_size: int, count: int) -> int:
    """The exact Le of a Read Records answer of ``count`` records of ``record_size`` bytes
    (``00`` when it does not fit one short answer)."""
    le = count * (2 + record_size)
    return le if le <= 0xFF else 0x00


def get_data_fci() -> bytes:
    """Get Data ``00 6F``: the FCI of the current application (as Select Application answers)."""
    return _apdu(0xCA, 0x00, 0x6F, le=0x00)


def get_challenge() -> bytes:
    """Card Get Challenge ``00 84 00 00 08``: 8 random bytes."""
    return _apdu(0x84, 0x00, 0x00, le=0x08)


def read_record_multiple(sfi: int, first: int, offset: int, length: int) -> bytes:
    """Read Record Multiple ``00 B3 first SFI·8+5 04 54 02 offset length 00``: ``length``
    bytes at ``offset`` of each record from ``first`` on, as many as fit the answer (``6200``:
    partial, go on from the next record)."""
    if not 0 <= offset <= 0xFF or not 1 <= length <= 0xFF:
        raise ValueError("offset 0..255, length 1..255")
    data = bytes([0x54, 0x02, offset, length])
    return _apdu(0xB3, first, (sfi << 3) | READ_MULTIPLE, data, 0x00)


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


def open_secure_session(
    key_index: int,
    challenge: bytes,
    sfi: int = 0,
    record: int = 0,
    *,
    mode: SessionMode = SessionMode.REGULAR,
) -> bytes:
    """Open Secure Session (Calypso Rev 3), reading ``record`` of ``sfi`` (0: none).

    Args:
        key_index: 1 issuer, 2 load, 3 debit (:attr:`KeyRole.key_index`).
        challenge: the SAM challenge, 4 bytes (regular) or 8 (extended).
        sfi: file of the record read in the opening (0 with ``record`` 0: none).
        record: record number read in the opening.
        mode: regular (P2 low bits ``01``) or Rev 3.2 extended (``02``, data ``00`` || challenge).
    """
    if len(challenge) != mode.challenge_size:
        raise ValueError(f"a {mode.value} session takes a {mode.challenge_size}-byte challenge")
    data = challenge if mode is SessionMode.REGULAR else b"\x00" + challenge
    p1 = (record << 3) + key_index
    p2 = ((sfi if record else 0) << 3) + mode.open_p2_mode
    return _apdu(0x8A, p1, p2, data, 0x00)


@dataclass(frozen=True)
class OpenSessionAnswer:
    """Open Secure Session answer data, split (Calypso Rev 3).

    Attributes:
        transaction_counter: the card's transaction counter before the session (3 bytes).
        card_challenge: transaction counter (3) || random (1 regular, 5 extended).
        previous_session_ratified: ratification byte ``00`` (regular) or bit 0 clear (extended).
        session_management_allowed: extended mode, bit 1 of the ratification byte.
        kif: KIF of the session key.
        kvc: KVC of the session key.
        record: the record read in the opening (``b""`` if none).
    """

    transaction_counter: int
    card_challenge: bytes
    previous_session_ratified: bool
    session_management_allowed: bool
    kif: int
    kvc: int
    record: bytes


def parse_open_secure_session(data: bytes, mode: SessionMode) -> OpenSessionAnswer:
    """Split an Open Secure Session answer.

    ``counter (3) || random (1|5) || ratification (1) || KIF || KVC || length || record``.

    Raises:
        EngineError: the answer is malformed (lengths do not add up).
    """
    offset = 3 + mode.card_random_size
    if len(data) < offset + 4 or len(data) != offset + 4 + data[offset + 3]:
        raise EngineError("malformed Open Secure Session answer")
    ratification = data[offset]
    if mode is SessionMode.EXTENDED:
        ratified, managed = not ratification & 0x01, bool(ratification & 0x02)
    else:
        ratified, managed = ratification == 0x00, False
    return OpenSessionAnswer(
        transaction_counter=int.from_bytes(data[:3], "big"),
        card_challenge=data[:offset],
        previous_session_ratified=ratified,
        session_management_allowed=managed,
        kif=data[offset + 1],
        kvc=data[offset + 2],
        record=data[offset + 4 :],
    )


@dataclass(frozen=True)
class FCI:
    """What a Select Application FCI says (``6F [84 DF name] [A5 [BF0C [C7 serial] [53 SI]]]``).

    Attributes:
        df_name: the DF name (tag ``84``).
        serial: the application serial number (tag ``C7``, 8 bytes; ``b""`` if absent).
        startup_info: the startup information (tag ``53``), or ``None`` if absent or invalid.
    """

    df_name: bytes
    serial: bytes
    startup_info: StartupInfo | None


def _tlv_items(data: bytes) -> dict[int, bytes]:
    """One level of BER-TLV with 1- or 2-byte tags and 1-byte lengths (what Calypso FCIs use)."""
    items: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F and i < len(data):  # two-byte tag (BF0C)
            tag = (tag << 8) | data[i]
            i += 1
        if i >= len(data):
            break
        length = data[i]
        items[tag] = data[i + 1 : i + 1 + length]
        i += 1 + length
    return items


def parse_fci(fci: bytes) -> FCI:
    """Parse a Calypso FCI; missing parts come back empty (``None`` for the startup info)."""
    top = _tlv_items(fci).get(0x6F, b"")
    inner = _tlv_items(top)
    discretionary = _tlv_items(_tlv_items(inner.get(0xA5, b"")).get(0xBF0C, b""))
    startup: StartupInfo | None = None
    if 0x53 in discretionary:
        try:
            startup = StartupInfo.from_bytes(discretionary[0x53])
        except SchemaError:
            startup = None
    return FCI(inner.get(0x84, b""), discretionary.get(0xC7, b""), startup)


def digest_form(apdu: bytes) -> bytes:
    """A card command as the secure-session digest takes it: a case 4 command without ``Le``.

    The reference terminal strips the trailing ``Le`` of commands that carry data and ``Le``
    before giving them to the SAM; the card digests them the same way.
    """
    if len(apdu) > 5 and apdu[4] != 0 and len(apdu) == 6 + apdu[4]:
        return apdu[:-1]
    return apdu


def parse_records(response: bytes) -> dict[int, bytes]:
    """Records of a Read Records answer (``number || length || data`` each).

    Raises:
        EngineError: the answer is malformed.
    """
    records: dict[int, bytes] = {}
    i = 0
    while i < len(response):
        if i + 2 > len(response):
            raise EngineError("truncated Read Records answer")
        number, length = response[i], response[i + 1]
        data = response[i + 2 : i + 2 + length]
        if len(data) != length:
            raise EngineError("truncated Read Records answer")
        records[number] = data
        i += 2 + length
    return records


def close_secure_session(signature: bytes, *, ratify_now: bool) -> bytes:
    """Close Secure Session with the terminal signature."""
    p1 = CLOSE_RATIFY_NOW if ratify_now else CLOSE_RATIFY_LATER
    return _apdu(0x8E, p1, 0x00, signature, 0x00)


def cancel_secure_session() -> bytes:
    """Close Secure Session without signature (``00 8E 00 00 00``): the card drops the session."""
    return _apdu(0x8E, 0x00, 0x00, le=0x00)


def ratification() -> bytes:
    """The ratification command (Calypso ``B2 00 00 00``)."""
    return bytes([CLA, 0xB2, 0x00, 0x00, 0x00])


SV_GET_LENGTHS = {(False, SV_GET_RELOAD): 0x21, (False, SV_GET_DEBIT): 0x1E}
SV_GET_EXTENDED_LENGTH = 0x3D


def sv_get(debit: bool, mode: SessionMode = SessionMode.REGULAR) -> bytes:
    """SV Get ``00 7C 00|01 07|09 Le``: P1 ``01`` for the Rev 3.2 layout, P2 ``09`` with the
    debit log or ``07`` with the load log; Le exact (``1E`` / ``21`` regular, ``3D`` extended)."""
    p2 = SV_GET_DEBIT if debit else SV_GET_RELOAD
    if mode is SessionMode.EXTENDED:
        return _apdu(0x7C, 0x01, p2, le=SV_GET_EXTENDED_LENGTH)
    return _apdu(0x7C, 0x00, p2, le=SV_GET_LENGTHS[(False, p2)])


def sv_get_header(apdu: bytes) -> bytes:
    """The SV Get header SV Prepare takes: INS || P1 || P2 || Le."""
    return apdu[1:5]


@dataclass(frozen=True)
class SVGetAnswer:
    """An SV Get answer, split (Calypso).

    Attributes:
        kvc: KVC of the SV key.
        tnum: SV transaction number.
        balance: balance in eurocents (3 bytes signed).
        load_log: the load log (22 bytes), if returned.
        debit_log: the debit log (19 bytes), if returned.
    """

    kvc: int
    tnum: int
    balance: int
    load_log: bytes | None
    debit_log: bytes | None


def parse_sv_get(data: bytes) -> SVGetAnswer:
    """Split an SV Get answer by its length: ``21`` (reload), ``1E`` (debit), ``3D`` (Rev 3.2).

    Regular: KVC || tnum (2) || previous signature (5) || balance (3) || log. Extended: 8 bytes
    || KVC || tnum (2) || previous signature (6) || balance (3) || load log (22) || debit log (19).

    Raises:
        EngineError: another length.
    """
    if len(data) in (0x21, 0x1E):
        log = data[11:]
        return SVGetAnswer(
            data[0],
            int.from_bytes(data[1:3], "big"),
            int.from_bytes(data[8:11], "big", signed=True),
            log if len(data) == 0x21 else None,
            log if len(data) == 0x1E else None,
        )
    if len(data) == SV_GET_EXTENDED_LENGTH:
        return SVGetAnswer(
            data[8],
            int.from_bytes(data[9:11], "big"),
            int.from_bytes(data[17:20], "big", signed=True),
            data[20:42],
            data[42:61],
        )
    raise EngineError(f"SV Get answer of {len(data)} bytes")


def sv_partial(
    ins: int, amount: int, date: bytes, time: bytes, kvc: int, mode: SessionMode
) -> bytes:
    """The SV command as SV Prepare takes it: INS || ``00 00`` || Lc || data up to the KVC.

    Reload (``B8``): challenge placeholder || date (2) || free || KVC || free || amount (3,
    signed) || time (2). Debit (``BA``) / Undebit (``BC``): placeholder || amount (2, signed:
    negative for a debit) || date (2) || time (2) || KVC. The SAM fills in P1, P2, the
    placeholder, its serial and transaction number, and the MAC (5|10 bytes).
    """
    mac_size = mode.sv_signature_size[0]
    if ins == INS_SV_RELOAD:
        data = (
            b"\x00" + date + b"\x00" + bytes([kvc]) + b"\x00"
            + amount.to_bytes(3, "big", signed=True) + time
        )  # fmt: skip
        return bytes([ins, 0, 0, 18 + mac_size]) + data
    signed = -amount if ins == INS_SV_DEBIT else amount
    data = b"\x00" + signed.to_bytes(2, "big", signed=True) + date + time + bytes([kvc])
    return bytes([ins, 0, 0, 15 + mac_size]) + data


def sv_operation(
    partial: bytes, sam_answer: bytes, sam_serial: bytes, *, in_session: bool = True
) -> bytes:
    """The SV Reload / Debit / Undebit APDU from :func:`sv_partial` and the SAM's SV Prepare
    answer (challenge (3) || SAM transaction number (3) || MAC).

    In a secure session it is case 3 (the card's SV signature comes with the close); outside
    one, case 4 with Le the card's SV signature size (``03`` regular, ``06`` extended, as the
    MAC size says), which the card answers at once for the SAM's SV Check.
    """
    challenge, sam_tnum, mac = sam_answer[:3], sam_answer[3:6], sam_answer[6:]
    data = bytes([challenge[2]]) + partial[5:] + sam_serial + sam_tnum + mac
    if len(data) != partial[3]:
        raise EngineError("SV Prepare answer does not fit the SV command")
    apdu = bytes([CLA, partial[0], challenge[0], challenge[1], len(data)]) + data
    if not in_session:
        apdu += bytes([6 if len(mac) == 10 else 3])
    return apdu


def parse_close_answer(data: bytes, mode: SessionMode) -> tuple[list[bytes], bytes]:
    """Split a Close Secure Session answer: postponed data (each ``length || data``, the
    length counting itself: the SV signatures) then the card signature (4|8).

    Raises:
        EngineError: the postponed data do not add up.
    """
    size = mode.signature_size
    postponed: list[bytes] = []
    i = 0
    while i < len(data) - size:
        length = data[i]
        if length < 1 or i + length > len(data) - size:
            raise EngineError("malformed Close Secure Session answer")
        postponed.append(data[i + 1 : i + length])
        i += length
    if len(data) - i != size:
        raise EngineError("malformed Close Secure Session answer")
    return postponed, data[i:]


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
