"""The emulated regional card: a Calypso-style ISO 7816-4 chip driven by :data:`CARD_LAYOUT`.

:class:`EmulatedCard` implements :class:`hardware.icc.EmulatedICC`. Its command set
(docs/emulated-card.md has the full table with P1/P2/data/response) is one dispatch table:

======  ===============================  ======  ===============================
INS     command                          INS     command
======  ===============================  ======  ===============================
``A4``  Select (DF name, FID, path)      ``8A``  Open Secure Session
``CA``  Get Data (FCI, traceability)     ``8E``  Close Secure Session
``B2``  Read Record(s), ratification     ``7C``  SV Get
``DC``  Update Record                    ``B8``  SV Reload
``D2``  Write Record                     ``BA``  SV Debit
``E2``  Append Record                    ``BC``  SV Undebit
``32``  Increase                         ``04``  Invalidate
``30``  Decrease                         ``44``  Rehabilitate
======  ===============================  ======  ===============================

Class bytes ``00`` (ISO) and ``94`` (legacy Calypso field readers) are both accepted.

Rules the card enforces: reading is free; every modification needs an open secure session whose
key role grants the role the layout names for that file and operation (``6982`` otherwise); the
session's modifications live in a working copy (:mod:`hardware.card.session`) committed
atomically at a correct Close Secure Session; bad input gets a status word, never an exception.
The one exception that leaves :meth:`EmulatedCard.transmit` is :class:`PowerCut`, raised only by
fault injection.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable

from card_schema.apdu_trace import trace
from card_schema.calypso import (
    APP_TYPE_RATIFICATION_COMMAND_REQUIRED,
    APP_TYPE_REV3,
    APP_TYPE_REV32_MODE,
    APP_TYPE_SV,
    SESSION_BUFFER_SIZES,
    SessionMode,
    StartupInfo,
    card_atr,
)
from card_schema.crypto import KeyRole
from card_schema.errors import SchemaError, VerificationError
from card_schema.layout import (
    CARD_LAYOUT,
    COUNTER_SIZE,
    COUNTERS_PER_RECORD,
    RECORD_SIZE,
    ApplicationLayout,
    CardLayout,
    FileLayout,
    FileType,
    Operation,
)
from hardware.card.apdu import (
    SW,
    CommandAPDU,
    CommandRefused,
    digested_command,
    handler_for,
    parse_apdu,
)
from hardware.card.image import (
    SV_BALANCE_MAX,
    SV_BALANCE_MIN,
    ApplicationImage,
    CardImage,
    CardImageStore,
    PowerCut,
)
from hardware.card.scheme import (
    SessionDigest,
    session_key,
    sv_card_signature,
    sv_key_outside_session,
    sv_terminal_mac,
)
from hardware.card.session import SecureSession

log = logging.getLogger(__name__)

CLASSES = frozenset({0x00, 0x94})  # ISO, and the Calypso class legacy field readers send

# Instruction codes (Calypso card command set).
INS_SELECT = 0xA4
INS_GET_DATA = 0xCA
INS_READ_RECORD = 0xB2
INS_READ_RECORD_MULTIPLE = 0xB3
INS_GET_CHALLENGE = 0x84
INS_UPDATE_RECORD = 0xDC
INS_WRITE_RECORD = 0xD2
INS_APPEND_RECORD = 0xE2
INS_INCREASE = 0x32
INS_DECREASE = 0x30
INS_OPEN_SESSION = 0x8A
INS_CLOSE_SESSION = 0x8E
INS_SV_GET = 0x7C
INS_SV_RELOAD = 0xB8
INS_SV_DEBIT = 0xBA
INS_SV_UNDEBIT = 0xBC
INS_INVALIDATE = 0x04
INS_REHABILITATE = 0x44

CLOSE_RATIFY_NOW = (
    0x80  # Close Secure Session P1: ratify at once; 00 waits for a ratification command
)
READ_ONE = 0x04  # Read Record P2 low bits: one record
READ_MULTIPLE = (
    0x05  # Read Record P2 low bits: records P1 to last, each as number || length || data
)
SV_GET_RELOAD, SV_GET_DEBIT = 0x07, 0x09  # SV Get P2 (Calypso): which log comes with the balance
SV_LOAD_LOG_SIZE, SV_DEBIT_LOG_SIZE = 22, 19  # Calypso SV logs (zero padded to 29 on the card)

# Files under the MF, readable by anyone: the ICC file (the card serial, traceability) and the
# ID file (the card number field readers show). Legacy field readers select them by file
# identifier whatever DF is current.
ICC_SFI = 0x02
ID_LID, ID_SFI = 0x0003, 0x03

Reply = tuple[bytes, SW]
FaultHook = Callable[[int], None]


SESSION_BUFFER_INDEX = 6  # startup information: 215 bytes of session buffer
PLATFORM = 0x3C  # startup information platform byte of the emulated chip
APPLICATION_SUBTYPE = 0x11  # anything but 00 and FF (the reference refuses both)
SOFTWARE_ISSUER, SOFTWARE_VERSION, SOFTWARE_REVISION = 0x0A, 0x01, 0x00


def startup_info(*, stored_value: bool, rev32_mode: bool) -> StartupInfo:
    """The startup information the card answers in an application's FCI (tag ``53``).

    The application type says what the card has: the ratification command is required (the
    card ratifies at the next command, not at deselection), SV when the application has a purse,
    and the Rev 3.2 extended mode when the card runs it.
    """
    app_type = APP_TYPE_REV3 | APP_TYPE_RATIFICATION_COMMAND_REQUIRED
    if stored_value:
        app_type |= APP_TYPE_SV
    if rev32_mode:
        app_type |= APP_TYPE_REV32_MODE
    return StartupInfo(
        SESSION_BUFFER_INDEX,
        PLATFORM,
        app_type,
        APPLICATION_SUBTYPE,
        SOFTWARE_ISSUER,
        SOFTWARE_VERSION,
        SOFTWARE_REVISION,
    )


def _ok(data: bytes = b"") -> Reply:
    return data, SW.OK


def _need_le(cmd: CommandAPDU, length: int) -> None:
    """Refuse with ``6Cxx`` before acting when the reader cannot take the ``length``-byte answer."""
    if cmd.ne < length:
        raise CommandRefused(SW.WRONG_LE, sw2=length)


def _tlv(tag: bytes, value: bytes) -> bytes:
    return tag + bytes([len(value)]) + value


class EmulatedCard:
    """An emulated regional card backed by a card image file.

    Args:
        store: the card image file (read at power-on, committed atomically at session close).
        layout: the card layout the card follows.
        random: source of card challenges (``os.urandom``; tests may fix it).
        rev32_mode: whether the card runs the Calypso Rev 3.2 extended mode (said in its startup
            information; ``False`` makes a regular Rev 3 card that refuses extended opens).
        fault_hook: called after each APDU with its index since power-on (0-based); raising
            :class:`PowerCut` from it cuts the power: the response is lost and the session dropped.
    """

    def __init__(
        self,
        store: CardImageStore,
        *,
        layout: CardLayout = CARD_LAYOUT,
        random: Callable[[int], bytes] = os.urandom,
        fault_hook: FaultHook | None = None,
        rev32_mode: bool = True,
    ) -> None:
        self.rev32_mode = rev32_mode
        self.last_session_mode: SessionMode | None = None  # of the last session opened
        self._store = store
        self._layout = layout
        self._random = random
        self.fault_hook = fault_hook
        self._icc_file = FileLayout("icc", layout.icc_lid, ICC_SFI, FileType.LINEAR, 1, "icc")
        self._id_file = FileLayout("id", ID_LID, ID_SFI, FileType.LINEAR, 1, "id")
        self._mf_files = {f.lid: f for f in (self._icc_file, self._id_file)}
        self._handlers: dict[int, Callable[[CommandAPDU], Reply]] = {
            INS_SELECT: self._select,
            INS_GET_DATA: self._get_data,
            INS_READ_RECORD: self._read_record,
            INS_READ_RECORD_MULTIPLE: self._read_record_multiple,
            INS_GET_CHALLENGE: self._get_challenge,
            INS_UPDATE_RECORD: self._update_record,
            INS_WRITE_RECORD: self._write_record,
            INS_APPEND_RECORD: self._append_record,
            INS_INCREASE: self._increase,
            INS_DECREASE: self._decrease,
            INS_OPEN_SESSION: self._open_session,
            INS_CLOSE_SESSION: self._close_session,
            INS_SV_GET: self._sv_get,
            INS_SV_RELOAD: self._sv_operation,
            INS_SV_DEBIT: self._sv_operation,
            INS_SV_UNDEBIT: self._sv_operation,
            INS_INVALIDATE: self._invalidate,
            INS_REHABILITATE: self._rehabilitate,
        }
        self._image: CardImage | None = None
        self._lock = threading.RLock()  # a bridge may power off from another thread
        self._reset()

    # -- EmulatedICC ------------------------------------------------------------------------------

    def power_on(self) -> bytes:
        """Read the image (a card keeps only what was committed) and answer the ATR.

        Raises:
            CardImageError: the image file is missing or invalid (the card cannot power up).
        """
        with self._lock:
            self._reset()
            self._image = self._store.load()
            return self.atr

    @property
    def atr(self) -> bytes:
        """The ATR a contactless PC/SC reader builds from this card (Calypso historical bytes)."""
        serial = self._image.serial if self._image is not None else bytes(8)
        return card_atr(startup_info(stored_value=False, rev32_mode=self.rev32_mode), serial)

    def power_off(self) -> None:
        """Leave the field: any open session is abandoned, so its modifications are cancelled."""
        with self._lock:
            if self._session is not None:
                log.info("power off during a secure session: modifications cancelled")
            self._reset()

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU; returns response data and SW1 SW2.

        Raises:
            PowerCut: only when fault injection cut the power (after the APDU or during a commit).
        """
        with self._lock:
            return self._transmit(bytes(apdu))

    def _transmit(self, apdu: bytes) -> bytes:
        trace(log, "card <-", apdu)
        if self._image is None:
            response = SW.CONDITIONS_NOT_SATISFIED.to_bytes_sw()  # not powered
        else:
            try:
                response = self._process(apdu)
            except PowerCut:
                self._reset()
                raise
            except Exception:  # the chip answers, whatever happens inside the emulator
                log.exception("emulator defect on APDU %s", apdu.hex())
                response = SW.NO_PRECISE_DIAGNOSIS.to_bytes_sw()
        index = self._apdu_count
        self._apdu_count += 1
        if self.fault_hook is not None:
            try:
                self.fault_hook(index)
            except PowerCut:
                self._reset()
                raise
        trace(log, "card ->", response)
        return response

    # -- state ------------------------------------------------------------------------------------

    @property
    def image(self) -> CardImage | None:
        """The committed image in memory (``None`` when powered off)."""
        return self._image

    @property
    def in_session(self) -> bool:
        return self._session is not None

    def _reset(self) -> None:
        self._image = None
        self._app: ApplicationLayout | None = None
        self._df_name: bytes = b""
        self._ef: FileLayout | None = None
        self._session: SecureSession | None = None
        # SV Get outside a session: (application, header, answer with SW, extended), for the
        # SV operation that follows it out of session.
        self._sv_get_outside: tuple[str, bytes, bytes, bool] | None = None
        self._awaiting_ratification = False
        self._apdu_count = 0

    def _view(self) -> CardImage:
        """The image as commands see it: the session's working copy while a session is open."""
        if self._session is not None:
            return self._session.working
        assert self._image is not None
        return self._image

    def _abort_session(self, why: str) -> None:
        if self._session is not None:
            log.info("secure session cancelled: %s", why)
            self._session = None

    def _commit(self, image: CardImage) -> None:
        self._store.commit(image)
        self._image = image

    # -- dispatch ---------------------------------------------------------------------------------

    def _process(self, raw: bytes) -> bytes:
        if self._awaiting_ratification:
            # Calypso: the command after a Close Secure Session without ratification ratifies it;
            # the dedicated ratification command is CLA B2 00 00 00.
            self._awaiting_ratification = False
            assert self._image is not None
            ratified = self._image.copy()
            ratified.ratified = True
            self._commit(ratified)
            if len(raw) == 5 and raw[0] in CLASSES and raw[1:] == b"\xb2\x00\x00\x00":
                return SW.OK.to_bytes_sw()
        session = self._session
        try:
            cmd = parse_apdu(raw)
            handler = handler_for(cmd, CLASSES, self._handlers)
            data, sw = handler(cmd)
            if len(data) > cmd.ne:
                raise CommandRefused(SW.WRONG_LE, sw2=len(data) & 0xFF)
            response = data + sw.to_bytes_sw()
        except CommandRefused as refused:
            log.debug("refused %s: %s", raw.hex(), refused)
            response = refused.sw_bytes
        if (
            session is not None
            and session is self._session
            and not (len(raw) >= 2 and raw[1] in (INS_OPEN_SESSION, INS_CLOSE_SESSION))
        ):
            session.digest.update(digested_command(raw))
            session.digest.update(response)
        return response

    # -- selection --------------------------------------------------------------------------------

    def _enter_mf(self) -> None:
        self._abort_session("master file selected")
        self._app, self._df_name, self._ef = None, b"", None

    def _enter_application(self, app: ApplicationLayout, df_name: bytes) -> None:
        self._abort_session("application selected")
        self._app, self._df_name, self._ef = app, df_name, None

    def _application_reply(self, p2: int) -> Reply:
        assert self._app is not None
        data = self._fci() if p2 == 0x00 else b""
        if self._view().applications[self._app.name].invalidated:
            return data, SW.INVALIDATED
        return _ok(data)

    def _fci(self) -> bytes:
        """FCI of the current application, Calypso-style.

        ``6F [84 DF name] [A5 [BF0C [C7 serial] [53 startup information]]]``.
        """
        assert self._app is not None
        startup = startup_info(
            stored_value=self._app.stored_value, rev32_mode=self.rev32_mode
        ).to_bytes()
        discretionary = _tlv(
            b"\xbf\x0c", _tlv(b"\xc7", self._view().serial) + _tlv(b"\x53", startup)
        )
        return _tlv(b"\x6f", _tlv(b"\x84", self._df_name) + _tlv(b"\xa5", discretionary))

    def _file_info(self, f: FileLayout | None, lid: int) -> bytes:
        """Calypso proprietary information (tag ``85``, 23 bytes) of a selected file.

        SFI (0), file type (1: ``01`` MF, ``02`` DF, ``04`` EF), EF type (2), record size (3),
        number of records (4), access conditions (5..8: ``10`` in session, ``1F`` never, one
        per operation), key indexes (9..12), DF status (13), KVCs (14..16), KIFs (17..19),
        the file's own LID (21..22).
        """
        info = bytearray(23)
        if f is None:  # a DF or the MF
            info[1] = 0x02 if self._app else 0x01
            if self._app is not None:
                keys = self._view().applications[self._app.name].keys
                for i, role in enumerate(KeyRole):
                    key = keys.get(role)
                    info[14 + i] = key.kvc if key is not None else 0
                    info[17 + i] = self._app.kif(role)
        else:
            info[0], info[1] = f.sfi, 0x04
            info[2] = {
                FileType.LINEAR: 0x02,
                FileType.CYCLIC: 0x04,
                FileType.COUNTERS: 0x09,
                FileType.SV_LOG: 0x04,
                FileType.SIMULATED_COUNTER: 0x08,
            }[f.type]
            info[3], info[4] = f.record_size, f.record_count
            for i, op in enumerate(Operation):
                needed = f.access.get(op)
                info[5 + i] = 0x1F if needed is None else 0x10
                info[9 + i] = 0 if needed is None else needed.key_index
            if f.type is FileType.SIMULATED_COUNTER and self._app is not None:
                # An EF's data reference (14..15): the counters file's SFI, the counter number.
                shared = self._app.file(f.shares or "")
                info[14], info[15] = shared.sfi, f.counter_number
        info[21:23] = lid.to_bytes(2, "big")
        return _tlv(b"\x85", bytes(info))

    def _select(self, cmd: CommandAPDU) -> Reply:
        if cmd.p2 not in (0x00, 0x0C):
            raise CommandRefused(SW.WRONG_P1P2)
        if cmd.p1 == 0x04:  # by DF name
            name = cmd.require_data(1, 16)
            try:
                app = self._layout.application_by_df_name(name)
            except SchemaError:
                raise CommandRefused(SW.FILE_NOT_FOUND) from None
            self._enter_application(app, name)
            return self._application_reply(cmd.p2)
        if cmd.p1 in (0x00, 0x01, 0x02):  # by file identifier: MF, DF, or EF of the current DF
            return self._select_fid(int.from_bytes(cmd.require_data(2, 2), "big"), cmd.p2)
        if cmd.p1 in (0x08, 0x09):  # path from the MF (08) or from the current DF (09)
            path = cmd.require_data(2, 8)
            if len(path) % 2:
                raise CommandRefused(SW.WRONG_LENGTH)
            fids = [int.from_bytes(path[i : i + 2], "big") for i in range(0, len(path), 2)]
            if cmd.p1 == 0x08 and fids[0] != self._layout.mf_lid:
                self._enter_mf()
            reply: Reply = _ok()
            for step in fids:
                reply = self._select_fid(step, cmd.p2)
            return reply
        raise CommandRefused(SW.WRONG_P1P2)

    def _select_fid(self, fid: int, p2: int) -> Reply:
        if fid == self._layout.mf_lid:
            self._enter_mf()
            return _ok(self._file_info(None, fid) if p2 == 0x00 else b"")
        if fid in self._mf_files:  # ICC and ID files: from the MF or from any application
            self._ef = self._mf_files[fid]
            return _ok(self._file_info(self._ef, fid) if p2 == 0x00 else b"")
        if self._app is not None:
            try:
                ef = self._app.file_by_lid(fid)
            except SchemaError:
                pass
            else:
                self._ef = ef
                return _ok(self._file_info(ef, fid) if p2 == 0x00 else b"")
        try:
            app = self._layout.application_by_lid(fid)
        except SchemaError:
            raise CommandRefused(SW.FILE_NOT_FOUND) from None
        if app is not self._app:
            self._enter_application(app, app.aid)
        else:
            self._ef = None
        return self._application_reply(p2)

    def _get_data(self, cmd: CommandAPDU) -> Reply:
        cmd.require_no_data()
        tag = (cmd.p1 << 8) | cmd.p2
        if tag == 0x006F:  # FCI of the current application
            if self._app is None:
                raise CommandRefused(SW.REFERENCED_DATA_NOT_FOUND, "no application selected")
            return _ok(self._fci())
        if tag == 0x0185:  # traceability: serial number and transaction counter
            view = self._view()
            return _ok(_tlv(b"\xc7", view.serial) + view.transaction_counter.to_bytes(3, "big"))
        raise CommandRefused(SW.REFERENCED_DATA_NOT_FOUND)

    # -- files ------------------------------------------------------------------------------------

    def _resolve_file(self, sfi: int) -> FileLayout:
        """The file an SFI names in the current DF (``0`` = the current EF); it becomes current."""
        if sfi == 0:
            if self._ef is None:
                raise CommandRefused(SW.NO_CURRENT_EF)
            return self._ef
        if self._app is None:
            for f in self._mf_files.values():
                if f.sfi == sfi:
                    self._ef = f
                    return f
            raise CommandRefused(SW.FILE_NOT_FOUND, "no application selected")
        try:
            self._ef = self._app.file_by_sfi(sfi)
        except SchemaError:
            raise CommandRefused(SW.FILE_NOT_FOUND) from None
        return self._ef

    def _records(self, f: FileLayout) -> list[bytes]:
        if f is self._icc_file or f is self._id_file:
            return [self._view().serial.ljust(RECORD_SIZE, b"\x00")]
        assert self._app is not None
        records = self._view().applications[self._app.name].records
        if f.type is FileType.SIMULATED_COUNTER:  # no records of its own: a counter of f.shares
            return [f.simulated_record(records[f.shares or ""][0])]
        return records[f.name]

    def _read_record(self, cmd: CommandAPDU) -> Reply:
        cmd.require_no_data()
        mode = cmd.p2 & 0x07
        if mode not in (READ_ONE, READ_MULTIPLE) or cmd.p1 == 0:
            raise CommandRefused(SW.WRONG_P1P2)
        f = self._resolve_file(cmd.p2 >> 3)
        records = self._records(f)
        if cmd.p1 > len(records):
            raise CommandRefused(SW.RECORD_NOT_FOUND)
        if mode == READ_ONE:
            record = records[cmd.p1 - 1]
            if f.type is FileType.COUNTERS and cmd.le:
                # Read Counter: the reference asks Le = 3 * n for the first n counters and the
                # card answers exactly those 3 * n bytes (Le beyond the record: 6Cxx).
                if cmd.le > len(record):
                    raise CommandRefused(SW.WRONG_LE, sw2=len(record))
                return _ok(record[: cmd.le])
            return _ok(record)
        out = b""
        for number in range(cmd.p1, len(records) + 1):
            item = bytes([number, f.record_size]) + records[number - 1]
            if len(out) + len(item) > cmd.ne:
                break
            out += item
        if not out:
            raise CommandRefused(SW.WRONG_LE, sw2=f.record_size + 2)
        return _ok(out)

    def _read_record_multiple(self, cmd: CommandAPDU) -> Reply:
        """Read Record Multiple ``00 B3 first SFI·8+5 04 54 02 offset length``: ``length``
        bytes at ``offset`` of each record from ``first`` on, as many as Le takes; ``6200``
        when records remain (the reader goes on from the next one)."""
        if cmd.p2 & 0x07 != READ_MULTIPLE or cmd.p1 == 0:
            raise CommandRefused(SW.WRONG_P1P2)
        data = cmd.require_data(4, 4)
        if data[:2] != b"\x54\x02" or data[3] == 0:
            raise CommandRefused(SW.WRONG_DATA, "data is 54 02 offset length")
        offset, length = data[2], data[3]
        f = self._resolve_file(cmd.p2 >> 3)
        records = self._records(f)
        if cmd.p1 > len(records):
            raise CommandRefused(SW.RECORD_NOT_FOUND)
        if offset + length > f.record_size:
            raise CommandRefused(SW.WRONG_DATA, "offset and length beyond the record")
        out = b""
        for number in range(cmd.p1, len(records) + 1):
            if len(out) + length > cmd.ne:
                return out, SW.PARTIAL
            out += records[number - 1][offset : offset + length]
        return _ok(out)

    def _get_challenge(self, cmd: CommandAPDU) -> Reply:
        """Get Challenge ``00 84 00 00 08``: 8 random bytes."""
        if cmd.p1 or cmd.p2:
            raise CommandRefused(SW.WRONG_P1P2)
        cmd.require_no_data()
        if cmd.le != 8:
            raise CommandRefused(SW.WRONG_LENGTH, "Le is 08")
        return _ok(self._random(8))

    def _writable(self, cmd: CommandAPDU, operation: Operation) -> tuple[SecureSession, FileLayout]:
        """Checks common to every record modification; returns the session and the file."""
        session = self._session
        if session is None:
            raise CommandRefused(SW.SECURITY_NOT_SATISFIED, "modification outside a secure session")
        f = self._resolve_file(cmd.p2 >> 3)
        if f.lid in self._mf_files or operation not in f.access:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, f"{operation.value} never allowed")
        if session.working.applications[session.application.name].invalidated:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "application invalidated")
        session.require_role(f.access[operation])
        return session, f

    def _record_data(self, cmd: CommandAPDU, f: FileLayout) -> bytes:
        return cmd.require_data(1, f.record_size).ljust(f.record_size, b"\x00")

    def _update_record(self, cmd: CommandAPDU) -> Reply:
        return self._put_record(cmd, write=False)

    def _write_record(self, cmd: CommandAPDU) -> Reply:
        return self._put_record(cmd, write=True)

    def _put_record(self, cmd: CommandAPDU, *, write: bool) -> Reply:
        if cmd.p2 & 0x07 != READ_ONE or cmd.p1 == 0:
            raise CommandRefused(SW.WRONG_P1P2)
        session, f = self._writable(cmd, Operation.UPDATE)
        data = self._record_data(cmd, f)
        records = self._records(f)
        if cmd.p1 > len(records):
            raise CommandRefused(SW.RECORD_NOT_FOUND)
        session.reserve(len(cmd.data))
        if write:  # Write Record ORs the data into the record (ISO 7816-4 "logical OR")
            data = bytes(a | b for a, b in zip(records[cmd.p1 - 1], data, strict=True))
        records[cmd.p1 - 1] = data
        return _ok()

    def _append_record(self, cmd: CommandAPDU) -> Reply:
        if cmd.p1 != 0 or cmd.p2 & 0x07:
            raise CommandRefused(SW.WRONG_P1P2)
        session, f = self._writable(cmd, Operation.APPEND)
        if f.type is not FileType.CYCLIC:
            raise CommandRefused(SW.FILE_TYPE_MISMATCH)
        data = self._record_data(cmd, f)
        session.reserve(len(cmd.data))
        records = self._records(f)
        records[:] = [data, *records[:-1]]  # newest first, oldest dropped
        return _ok()

    def _increase(self, cmd: CommandAPDU) -> Reply:
        return self._count(cmd, Operation.INCREASE)

    def _decrease(self, cmd: CommandAPDU) -> Reply:
        return self._count(cmd, Operation.DECREASE)

    def _count(self, cmd: CommandAPDU, operation: Operation) -> Reply:
        if cmd.p2 & 0x07 or cmd.p1 == 0:
            raise CommandRefused(SW.WRONG_P1P2)
        session, f = self._writable(cmd, operation)
        if f.type is not FileType.COUNTERS:
            raise CommandRefused(SW.FILE_TYPE_MISMATCH)
        if cmd.p1 > COUNTERS_PER_RECORD:
            raise CommandRefused(SW.RECORD_NOT_FOUND, "no such counter")
        amount = int.from_bytes(cmd.require_data(COUNTER_SIZE, COUNTER_SIZE), "big")
        _need_le(cmd, COUNTER_SIZE)
        records = self._records(f)
        start = (cmd.p1 - 1) * COUNTER_SIZE
        value = int.from_bytes(records[0][start : start + COUNTER_SIZE], "big")
        value = value + amount if operation is Operation.INCREASE else value - amount
        if not 0 <= value < 1 << (8 * COUNTER_SIZE):
            raise CommandRefused(SW.WRONG_DATA, "counter overflow or underflow")
        session.reserve(len(cmd.data))
        new = value.to_bytes(COUNTER_SIZE, "big")
        records[0] = records[0][:start] + new + records[0][start + COUNTER_SIZE :]
        return _ok(new)

    # -- secure session ---------------------------------------------------------------------------

    def _open_session(self, cmd: CommandAPDU) -> Reply:
        """Open Secure Session, Calypso Rev 3.

        P1 = record * 8 + key index (1 issuer, 2 load, 3 debit); P2 = SFI * 8 + 1 (regular:
        data = SAM challenge (4)) or + 2 (Rev 3.2 extended: data = ``00`` || SAM challenge (8)).
        Answer: transaction counter (3) || random (1, or 5 extended) || ratification byte (``00``
        ratified, else ``01``; extended: bit 0 not ratified, bit 1 session management allowed) ||
        KIF || KVC || record length || record.
        """
        key_index, record_number = cmd.p1 & 0x07, cmd.p1 >> 3
        sfi, p2_mode = cmd.p2 >> 3, cmd.p2 & 0x07
        if p2_mode == 1:
            mode = SessionMode.REGULAR
        elif p2_mode == 2 and self.rev32_mode:
            mode = SessionMode.EXTENDED
        else:
            raise CommandRefused(SW.WRONG_P1P2, "session mode not supported")
        try:
            role = KeyRole.from_key_index(key_index)
        except SchemaError:
            raise CommandRefused(SW.WRONG_P1P2, "key index") from None
        if mode is SessionMode.EXTENDED:
            data = cmd.require_data(9, 9)
            if data[0] != 0x00:
                raise CommandRefused(SW.WRONG_DATA)
            sam_challenge = data[1:]
        else:
            sam_challenge = cmd.require_data(4, 4)
        self._abort_session("new session opened")
        if self._app is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "no application selected")
        app = self._app
        image = self._view()
        key = image.applications[app.name].keys.get(role)
        if key is None:
            raise CommandRefused(SW.REFERENCED_DATA_NOT_FOUND, f"no {role.value} key")
        if image.transaction_counter == 0:
            raise CommandRefused(SW.TRANSACTION_COUNTER_EXHAUSTED)
        record = b""
        if record_number:
            if not sfi:
                raise CommandRefused(SW.WRONG_P1P2)
            f = self._resolve_file(sfi)
            records = self._records(f)
            if record_number > len(records):
                raise CommandRefused(SW.RECORD_NOT_FOUND)
            record = records[record_number - 1]
        counter = image.transaction_counter.to_bytes(3, "big")
        card_challenge = counter + self._random(mode.card_random_size)
        ratification = 0x00 if image.ratified else 0x01
        if mode is SessionMode.EXTENDED:
            ratification |= 0x02  # session management allowed
        response = (
            card_challenge + bytes([ratification, app.kif(role), key.kvc, len(record)]) + record
        )
        _need_le(cmd, len(response))
        working = image.copy()
        working.transaction_counter -= 1  # Calypso counts down, one step per session
        digest = SessionDigest(session_key(key.key, sam_challenge, card_challenge), response)
        self.last_session_mode = mode
        self._session = SecureSession(
            app,
            role,
            digest,
            working,
            mode=mode,
            buffer_bytes=SESSION_BUFFER_SIZES[SESSION_BUFFER_INDEX],
        )
        return _ok(response)

    def _close_session(self, cmd: CommandAPDU) -> Reply:
        session = self._session
        if session is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "no secure session open")
        self._session = None  # whatever happens now, this session is over
        if not cmd.data:  # Calypso: Close Secure Session without signature cancels the session
            log.info("secure session cancelled by the terminal")
            return _ok()
        if cmd.p1 not in (0x00, CLOSE_RATIFY_NOW) or cmd.p2 != 0:
            raise CommandRefused(SW.WRONG_P1P2)
        size = session.mode.signature_size
        if len(cmd.data) != size:  # e.g. a 4-byte signature closing an extended session
            raise CommandRefused(SW.WRONG_LENGTH)
        # Postponed data first (each: length byte counting itself || data): the SV signatures.
        postponed = b"".join(bytes([1 + len(p)]) + p for p in session.postponed)
        _need_le(cmd, len(postponed) + size)
        try:
            session.digest.verify_terminal_signature(cmd.data)
        except VerificationError:
            raise CommandRefused(SW.INCORRECT_SIGNATURE, "session cancelled") from None
        signature = postponed + session.digest.card_signature(size)
        committed = session.working
        committed.ratified = cmd.p1 == CLOSE_RATIFY_NOW
        self._commit(committed)
        self._awaiting_ratification = not committed.ratified
        return _ok(signature)

    # -- stored value -----------------------------------------------------------------------------

    def _sv_application(self) -> ApplicationLayout:
        if self._app is None or not self._app.stored_value:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "no stored value in this application")
        return self._app

    def _sv_get(self, cmd: CommandAPDU) -> Reply:
        """SV Get ``00 7C 00|01 07|09`` (Calypso): P1 ``01`` asks the Rev 3.2 layout.

        Regular, P2 ``07``: KVC || SV tnum (2) || previous SV signature (5) || balance (3) ||
        load log (22) = 33 bytes; P2 ``09``: the same with the debit log (19) = 30 bytes.
        Extended: 8 bytes || KVC || SV tnum (2) || previous signature (6) || balance (3) || load
        log (22) || debit log (19) = 61 bytes. KVC: of the load key (07) or debit key (09).
        Refusals as the reference's table: ``6D00`` in an application without stored value,
        ``6A81`` for P1 or P2, ``6A86`` for an Le other than that length (``00`` is taken).
        """
        cmd.require_no_data()
        if self._app is None or not self._app.stored_value:
            raise CommandRefused(SW.INS_NOT_SUPPORTED, "no stored value in this application")
        if cmd.p1 not in (0x00, 0x01) or cmd.p2 not in (SV_GET_RELOAD, SV_GET_DEBIT):
            raise CommandRefused(SW.INCORRECT_P1P2, "SV Get P1 is 00 or 01, P2 07 or 09")
        if cmd.p1 == 0x01 and not self.rev32_mode:
            raise CommandRefused(SW.INCORRECT_P1P2, "no Rev 3.2 mode")
        app = self._app
        purse = self._view().applications[app.name]
        role = KeyRole.LOAD if cmd.p2 == SV_GET_RELOAD else KeyRole.DEBIT
        key = purse.keys.get(role)
        kvc = bytes([key.kvc if key is not None else 0])
        tnum = purse.sv_tnum.to_bytes(2, "big")
        balance = purse.sv_balance.to_bytes(3, "big", signed=True)
        load_log = purse.records["sv_load_log"][0][:SV_LOAD_LOG_SIZE]
        debit_log = purse.records["sv_debit_log"][0][:SV_DEBIT_LOG_SIZE]
        if cmd.p1 == 0x01:
            data = bytes(8) + kvc + tnum + bytes(6) + balance + load_log + debit_log
        else:
            log_part = load_log if cmd.p2 == SV_GET_RELOAD else debit_log
            data = kvc + tnum + bytes(5) + balance + log_part
        if cmd.le is not None and cmd.le != 0 and cmd.le != len(data):
            # The reference's Le is the answer's exact length for P1 P2 (21h, 1Eh, 3Dh).
            raise CommandRefused(SW.LE_INCONSISTENT, "Le inconsistent with P2")
        _need_le(cmd, len(data))
        header = bytes([INS_SV_GET, cmd.p1, cmd.p2, len(data)])
        if self._session is not None:
            self._session.sv_get = (header, data + SW.OK.to_bytes_sw(), cmd.p1 == 0x01)
        else:
            self._sv_get_outside = (app.name, header, data + SW.OK.to_bytes_sw(), cmd.p1 == 0x01)
        return _ok(data)

    def _sv_operation(self, cmd: CommandAPDU) -> Reply:
        """SV Reload ``B8`` / Debit ``BA`` / Undebit ``BC`` (Calypso), in a session.

        P1 P2 and the first data byte: the SAM challenge of SV Prepare. Reload data: challenge
        (1) || date (2) || free (1) || KVC || free (1) || amount (3) || time (2) || SAM id (4) ||
        SAM tnum (3) || MAC (5|10). Debit / Undebit: challenge (1) || amount (2; negative for a
        debit) || date (2) || time (2) || KVC || SAM id (4) || SAM tnum (3) || MAC (5|10). In a
        session the answer is empty; the card's SV signature (3|6) comes in the Close Secure
        Session answer, as postponed data.
        """
        session = self._session
        if session is None:
            return self._sv_operation_outside(cmd)
        app = self._sv_application()
        purse = session.working.applications[app.name]
        if purse.invalidated:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "application invalidated")
        session.require_role(KeyRole.LOAD if cmd.ins == INS_SV_RELOAD else KeyRole.DEBIT)
        if session.sv_get is None:
            raise CommandRefused(
                SW.CONDITIONS_NOT_SATISFIED, "SV Get must come first in the session"
            )
        header, sv_response, _ = session.sv_get
        mac_size, sig_size = session.mode.sv_signature_size
        body = self._sv_check_mac(cmd, session.digest.key, header, sv_response, mac_size)
        balance = self._sv_apply(cmd, purse, body)
        session.reserve(len(cmd.data))
        session.sv_get = None  # each SV operation needs its own SV Get (the MAC covers it)
        session.postponed.append(
            sv_card_signature(session.digest.key, cmd.ins, purse.sv_tnum, balance, sig_size)
        )
        return _ok()

    def _sv_operation_outside(self, cmd: CommandAPDU) -> Reply:
        """SV Reload / Debit / Undebit outside a secure session, right after an SV Get.

        The card checks the SAM's MAC under :func:`~hardware.card.scheme.sv_key_outside_session`
        of its load (reload) or debit (debit, undebit) key, commits the purse and its log at
        once and answers its SV signature (3 regular, 6 extended: the SV Get's P1 says which)
        for the SAM's SV Check. Le is absent or the signature size (``03``/``06``).
        """
        app = self._sv_application()
        last, self._sv_get_outside = self._sv_get_outside, None  # one operation per SV Get
        if last is None or last[0] != app.name:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "SV Get must come first")
        _, header, sv_response, extended = last
        mode = SessionMode.EXTENDED if extended else SessionMode.REGULAR
        mac_size, sig_size = mode.sv_signature_size
        if cmd.le is not None and cmd.le != sig_size:
            raise CommandRefused(SW.WRONG_LENGTH, "Le is the SV signature size (03 or 06)")
        image = self._view().copy()
        purse = image.applications[app.name]
        if purse.invalidated:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "application invalidated")
        role = KeyRole.LOAD if cmd.ins == INS_SV_RELOAD else KeyRole.DEBIT
        key = purse.keys.get(role)
        if key is None:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, f"no {role.value} key")
        sv_key = sv_key_outside_session(
            key.key, bytes([cmd.p1, cmd.p2]) + cmd.data[:1], sv_response[:-2]
        )
        body = self._sv_check_mac(cmd, sv_key, header, sv_response, mac_size)
        kvc = body[4] if cmd.ins == INS_SV_RELOAD else body[7]
        if kvc != key.kvc:
            raise CommandRefused(SW.INCORRECT_SIGNATURE, "KVC of another key")
        balance = self._sv_apply(cmd, purse, body)
        self._commit(image)
        return _ok(sv_card_signature(sv_key, cmd.ins, purse.sv_tnum, balance, sig_size))

    @staticmethod
    def _sv_check_mac(
        cmd: CommandAPDU, key: bytes, header: bytes, sv_response: bytes, mac_size: int
    ) -> bytes:
        """The SV command's body once its MAC (the last ``mac_size`` bytes) checks."""
        body_size = 18 if cmd.ins == INS_SV_RELOAD else 15
        data = cmd.require_data(body_size + mac_size, body_size + mac_size)
        body, mac = data[:body_size], data[body_size:]
        signed = bytes([cmd.ins, cmd.p1, cmd.p2, len(data)]) + body
        expected = sv_terminal_mac(key, header, sv_response, signed, mac_size)
        if not hmac.compare_digest(expected, mac):
            raise CommandRefused(SW.INCORRECT_SIGNATURE, "SV MAC")
        return body

    @staticmethod
    def _sv_apply(cmd: CommandAPDU, purse: ApplicationImage, body: bytes) -> int:
        """Apply a checked SV command's amount to ``purse`` and write its log; the new balance."""
        if cmd.ins == INS_SV_RELOAD:
            amount = int.from_bytes(body[6:9], "big", signed=True)
            kvc, sam_id, sam_tnum = body[4], body[11:15], body[15:18]
        else:
            amount = int.from_bytes(body[1:3], "big", signed=True)
            kvc, sam_id, sam_tnum = body[7], body[8:12], body[12:15]
            if (cmd.ins == INS_SV_DEBIT) != (amount <= 0):
                raise CommandRefused(SW.WRONG_DATA, "a debit is negative, an undebit positive")
        balance = purse.sv_balance + amount
        if not SV_BALANCE_MIN <= balance <= SV_BALANCE_MAX or purse.sv_tnum == 0xFFFF:
            raise CommandRefused(SW.WRONG_DATA, "balance out of range")
        purse.sv_balance = balance
        purse.sv_tnum += 1
        after = balance.to_bytes(3, "big", signed=True)
        tnum_after = purse.sv_tnum.to_bytes(2, "big")
        if cmd.ins == INS_SV_RELOAD:
            entry = (
                body[1:3]  # date
                + body[3:4]  # free
                + bytes([kvc])
                + body[5:6]  # free
                + after
                + body[6:9]  # amount
                + body[9:11]  # time
                + sam_id
                + sam_tnum
                + tnum_after
            )
            purse.records["sv_load_log"] = [entry.ljust(RECORD_SIZE, b"\x00")]
        else:
            entry = body[1:7] + bytes([kvc]) + sam_id + sam_tnum + after + tnum_after
            log_records = purse.records["sv_debit_log"]
            purse.records["sv_debit_log"] = [entry.ljust(RECORD_SIZE, b"\x00"), *log_records[:-1]]
        return balance

    # -- invalidation -----------------------------------------------------------------------------

    def _invalidate(self, cmd: CommandAPDU) -> Reply:
        return self._set_invalidated(cmd, invalidated=True)

    def _rehabilitate(self, cmd: CommandAPDU) -> Reply:
        return self._set_invalidated(cmd, invalidated=False)

    def _set_invalidated(self, cmd: CommandAPDU, *, invalidated: bool) -> Reply:
        if cmd.p1 != 0 or cmd.p2 != 0:
            raise CommandRefused(SW.WRONG_P1P2)
        cmd.require_no_data()
        session = self._session
        if session is None:
            raise CommandRefused(SW.SECURITY_NOT_SATISFIED, "outside a secure session")
        app = session.working.applications[session.application.name]
        if app.invalidated == invalidated:
            raise CommandRefused(SW.CONDITIONS_NOT_SATISFIED, "already in that state")
        # A validator (debit key) may invalidate a listed card; a desk (load key) rehabilitates.
        session.require_role(KeyRole.DEBIT if invalidated else KeyRole.LOAD)
        session.reserve(0)
        app.invalidated = invalidated
        return _ok()
