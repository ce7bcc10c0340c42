"""The card transaction manager: prepare commands, process them in few exchanges, secure sessions.

Keyple's pattern (``CardTransactionManager``): ``prepare_*`` methods queue commands without
sending anything; ``process_*`` methods send what is queued, check every status word against the
per-command tables (:mod:`terminal.engine.status`) and update the in-memory image
(:class:`~terminal.engine.image.CalypsoCard`) after each exchange.

Secure session (docs/secure-session.md), with the SAM (:class:`~terminal.engine.sam.SAMResource`):

1. :meth:`CardTransactionManager.process_opening`: SAM Select Diversifier and Get Challenge, card
   Open Secure Session (reading one record for free); SAM Digest Init follows with the first
   digest elements (so :meth:`~CardTransactionManager.abandon_session` right after the opening
   costs no more SAM APDUs). Commands queued before the opening are then sent inside the session.
2. ``prepare_*`` the modifications (and reads), :meth:`~CardTransactionManager.process_commands`
   if their answers are needed before deciding what else to write.
3. :meth:`CardTransactionManager.process_closing`: when every queued command has a response the
   terminal can predict from the image (Update/Append ``9000``, Increase/Decrease the new value),
   the responses are *anticipated*: the SAM digests commands and predicted responses and gives the
   terminal signature first, then the card receives the modifications and the close back to back
   (one card exchange on a reader that batches APDUs). An answer that differs from the prediction
   cancels the session. SV operations cannot be anticipated (the card's SV signature is secret);
   they are sent one by one. Then Close Secure Session, SAM Digest Authenticate, and the image is
   updated only now: the card has committed.
4. :meth:`CardTransactionManager.process_ratification` (after a close with ``ratify_now=False``).

APDU counts: each command inside a session costs one card APDU; its command and response are
digest elements, kept in a buffer and given to the SAM in Digest Update Multiple APDUs (255 bytes
each) right before the next SAM command of the session, so that the SAM sees the elements in
exchange order. An anticipated close sends every element in one (or two) APDUs. The session itself
costs 2 card APDUs (open, close) and 5 SAM APDUs (Select Diversifier, Get Challenge, Digest Init,
Digest Close, Digest Authenticate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from card_schema.calypso import MODIFICATION_OVERHEAD, SessionMode
from card_schema.crypto import KeyRole
from card_schema.en1545 import EPOCH
from card_schema.layout import (
    COUNTER_SIZE,
    RECORD_SIZE,
    ApplicationLayout,
    FileLayout,
    FileType,
)
from firmware_host.readers.base import Reader
from terminal.engine import commands as cmd
from terminal.engine.channel import APDUChannel
from terminal.engine.commands import PreparedCommand, digest_form, parse_fci, parse_records
from terminal.engine.errors import (
    CardAuthenticationError,
    CardError,
    CommunicationError,
    EngineError,
    SAMError,
    SessionStateError,
)
from terminal.engine.image import ApplicationImage, CalypsoCard, SVState
from terminal.engine.sam import SAMResource
from terminal.engine.stats import APDUCounter
from terminal.engine.status import CardCommand, StatusInfo, card_status, check_card

log = logging.getLogger(__name__)

PARIS = ZoneInfo("Europe/Paris")
SW_OK = b"\x90\x00"


@dataclass(frozen=True)
class SessionOpening:
    """What Open Secure Session answered.

    Attributes:
        transaction_counter: the card's transaction counter before this session (the journal's
            ``card_tx_counter``).
        previous_session_ratified: ``False`` when the card's previous session was committed but
            not ratified (its close response may have been lost).
        kif: key identifier of the session key.
        kvc: key version.
        record: the record read by the opening (``b""`` if none).
        response: the whole response data (given to SAM Digest Init).
        mode: regular or Rev 3.2 extended session.
    """

    transaction_counter: int
    previous_session_ratified: bool
    kif: int
    kvc: int
    record: bytes
    response: bytes
    mode: SessionMode = SessionMode.REGULAR


@dataclass(frozen=True)
class SessionClosing:
    """A verified close: the card committed the session.

    Attributes:
        card_signature: the card's close signature (verified by the SAM).
        transaction_counter: the card's transaction counter after the session.
        ratified: whether the close ratified at once.
        anticipated: whether the responses were anticipated (one card exchange for the writes
            and the close).
    """

    card_signature: bytes
    transaction_counter: int
    ratified: bool
    anticipated: bool


@dataclass
class _Session:
    application: ApplicationLayout
    role: KeyRole
    opening: SessionOpening
    modifications: int = 0
    buffer: int = 0
    buffer_limit: int = 215  # the card's declared session buffer, bytes
    # The SV Get of this session not yet used by an SV operation: header, answer (data and
    # SW) and its parsed form.
    sv_get: tuple[bytes, bytes, cmd.SVGetAnswer] | None = None
    sv_operations: list[SVOperation] = field(default_factory=list)


@dataclass(frozen=True)
class SVOperation:
    """An SV Reload / Debit / Undebit the card accepted in the session (committed at the close).

    Attributes:
        command: which one.
        amount: eurocents, as asked (positive for a debit).
        date_time: date (2) || time (2) given to the card.
        kvc: KVC of the SV key (from the SV Get).
        sam_id: the SAM serial (4) written in the command and the card's log.
        sam_tnum: the SAM's SV transaction number.
        balance_after: the balance the card will have.
        tnum_after: the SV transaction number the card will have.
    """

    command: CardCommand
    amount: int
    date_time: bytes
    kvc: int
    sam_id: bytes
    sam_tnum: int
    balance_after: int
    tnum_after: int


def sv_date_time(when: datetime) -> bytes:
    """Date (2) || time (2) of an SV command: Europe/Paris local EN 1545 days since 1997-01-01
    and minutes since midnight; a naive ``when`` is already local time."""
    local = when.astimezone(PARIS).replace(tzinfo=None) if when.tzinfo else when
    days = (local.date() - EPOCH).days
    minutes = local.hour * 60 + local.minute
    return days.to_bytes(2, "big") + minutes.to_bytes(2, "big")


class CardTransactionManager:
    """Drives one card (and the SAM, for secure sessions) for one transaction.

    Args:
        reader: the card reader, connected (see :func:`terminal.engine.selection.select_card`).
        card: the in-memory image of this card, updated by every process call.
        sam: the SAM, needed for secure sessions only.
        counter: APDU counter; by default the SAM's, or a new one.

    Raises (every ``process_*`` method):
        CardError: a card status word that is not a success (table per command).
        SAMError: a SAM status word that is not a success.
        CommunicationError: a reader failed; ``may_have_reached_card`` says whether the command
            may have been executed.
        SessionStateError: used out of order.
    """

    def __init__(
        self,
        reader: Reader,
        card: CalypsoCard,
        sam: SAMResource | None = None,
        *,
        counter: APDUCounter | None = None,
    ) -> None:
        self.card = card
        self.sam = sam
        if counter is None:
            counter = sam.counter if sam is not None else APDUCounter()
        self.counter = counter
        self._card = APDUChannel(reader, "card", counter)
        self._pending: list[PreparedCommand] = []
        self._session: _Session | None = None
        self._committed_later: list[tuple[PreparedCommand, bytes]] = []
        self._digest_buffer: list[bytes] = []
        self._digest_init_pending: SessionOpening | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def in_session(self) -> bool:
        """Whether a secure session is open (from the terminal's point of view)."""
        return self._session is not None

    @property
    def pending(self) -> tuple[PreparedCommand, ...]:
        """Commands prepared and not yet sent."""
        return tuple(self._pending)

    def _app(self) -> ApplicationImage:
        try:
            return self.card.current_application
        except KeyError:
            raise SessionStateError("no application selected") from None

    def _file(self, name: str) -> FileLayout:
        return self._app().layout.file(name)

    def _send(self, command: CardCommand, apdu: bytes) -> tuple[bytes, int, StatusInfo]:
        data, sw = self._card.transmit(command, apdu)
        return data, sw, card_status(command, sw)

    def _send_checked(self, command: CardCommand, apdu: bytes) -> bytes:
        data, sw = self._card.transmit(command, apdu)
        check_card(command, sw)
        return data

    # -- selection (outside a session) ------------------------------------------------------
    def process_select_application(
        self, name: str, *, df_name: bytes | None = None, reads: Sequence[str] = ()
    ) -> ApplicationImage | None:
        """Select application ``name`` (by DF name) and read whole files of it, outside a session.

        Selecting another application drops a secure session on the card: this refuses to do so
        while one is open.

        Args:
            name: application name in the layout (``"plum"``, ``"cursus"``...).
            df_name: DF name to select with (default: the canonical one).
            reads: files to read right after the selection (each one Read Records APDU).

        Returns:
            The application's image, or ``None`` when the card answered ``6A82`` (absent).
        """
        if self._session is not None:
            raise SessionStateError("selecting an application would cancel the open session")
        layout = self.card.layout.application(name)
        name_used = df_name or layout.aid
        data, sw, status = self._send(
            CardCommand.SELECT_APPLICATION, cmd.select_application(name_used)
        )
        if sw == 0x6A82:
            self.card.applications.pop(name, None)
            if self.card.current == name:
                self.card.current = None
            return None
        if not status.outcome.done:
            raise CardError(CardCommand.SELECT_APPLICATION, sw, status)
        app = self.card.applications.get(name)
        if app is None:
            app = ApplicationImage(layout, name_used)
            self.card.applications[name] = app
        app.df_name, app.fci, app.invalidated = name_used, data, sw == 0x6283
        fci = parse_fci(data)
        app.startup_info = fci.startup_info
        if len(fci.serial) == 8:
            self.card.serial = fci.serial
        self.card.current = name
        for file in reads:
            self.prepare_read_records(file)
        self.process_commands()
        return app

    # -- prepare ----------------------------------------------------------------------------
    def prepare_read_records(self, file: str, first: int = 1) -> CardTransactionManager:
        """Queue a Read Records of ``file`` from record ``first`` to its last record.

        With the exact Le the file's layout gives, as the reference sends it: a file read from
        its last record (a one-record file) by Read Record with Le = the record size (``1D``;
        a counters file ``3·n``), several records by Read Records with Le = n·(2 + size).
        """
        f = self._file(file)
        count = f.record_count - first + 1
        if count == 1:
            apdu = cmd.read_records(f.sfi, first, multiple=False, le=f.record_size & 0xFF)
        else:
            le = cmd.read_records_le(f.record_size, count)
            apdu = cmd.read_records(f.sfi, first, le=le)
        self._pending.append(
            PreparedCommand(CardCommand.READ_RECORDS, apdu, file=file, record=first)
        )
        return self

    def _modification(self, prepared: PreparedCommand, lc: int) -> CardTransactionManager:
        if self._session is None:
            raise SessionStateError(f"{prepared.command.value} needs an open secure session")
        modifications = self._session.modifications + 1
        buffer = self._session.buffer + lc + MODIFICATION_OVERHEAD
        if buffer > self._session.buffer_limit:
            raise SessionStateError(
                "too many modifications for one session "
                f"(the card's session buffer is {self._session.buffer_limit} bytes)"
            )
        self._session.modifications, self._session.buffer = modifications, buffer
        self._pending.append(prepared)
        return self

    def prepare_update_record(self, file: str, record: int, data: bytes) -> CardTransactionManager:
        """Queue an Update Record (in session)."""
        f = self._file(file)
        return self._modification(
            PreparedCommand(
                CardCommand.UPDATE_RECORD,
                cmd.update_record(f.sfi, record, data),
                file=file,
                record=record,
                data=data.ljust(f.record_size, b"\x00"),
            ),
            len(data),
        )

    def prepare_append_record(self, file: str, data: bytes) -> CardTransactionManager:
        """Queue an Append Record to a cyclic file (in session)."""
        f = self._file(file)
        return self._modification(
            PreparedCommand(
                CardCommand.APPEND_RECORD,
                cmd.append_record(f.sfi, data),
                file=file,
                data=data.ljust(f.record_size, b"\x00"),
            ),
            len(data),
        )

    def prepare_increase(self, file: str, counter: int, amount: int) -> CardTransactionManager:
        """Queue an Increase of counter ``counter`` (1..9) of a counters file (in session)."""
        return self._counter(CardCommand.INCREASE, file, counter, amount)

    def prepare_decrease(self, file: str, counter: int, amount: int) -> CardTransactionManager:
        """Queue a Decrease of counter ``counter`` (1..9) of a counters file (in session)."""
        return self._counter(CardCommand.DECREASE, file, counter, amount)

    def _counter(
        self, command: CardCommand, file: str, counter: int, amount: int
    ) -> CardTransactionManager:
        f = self._file(file)
        if f.type is not FileType.COUNTERS:
            raise SessionStateError(f"{file} is not a counters file")
        if not 0 <= amount < 1 << (8 * COUNTER_SIZE):
            raise SessionStateError("a counter amount is 3 bytes, not negative")
        apdu = cmd.change_counter(command is CardCommand.INCREASE, f.sfi, counter, amount)
        return self._modification(
            PreparedCommand(command, apdu, file=file, record=counter, amount=amount),
            COUNTER_SIZE,
        )

    def prepare_sv_get(self, *, debit: bool = True) -> CardTransactionManager:
        """Queue an SV Get (debit log with ``debit``, else the reload log): in the session's
        mode inside a session (Rev 3.2 layout in extended mode), regular outside."""
        mode = self._session.opening.mode if self._session is not None else SessionMode.REGULAR
        self._pending.append(PreparedCommand(CardCommand.SV_GET, cmd.sv_get(debit, mode)))
        return self

    def prepare_sv_debit(self, amount: int, when: datetime) -> CardTransactionManager:
        """Queue an SV Debit of ``amount`` eurocents, at most 32767 (in a session on the SV
        application). An SV Get is queued first when the session has none yet (the SV MAC
        covers its answer). The card's log names this terminal by its SAM's serial."""
        if not 0 <= amount <= 0x7FFF:
            raise SessionStateError("an SV debit is 0 to 32767 cents")
        return self._sv(CardCommand.SV_DEBIT, sv_date_time(when), amount)

    def prepare_sv_reload(self, amount: int, when: datetime) -> CardTransactionManager:
        """Queue an SV Reload of ``amount`` eurocents (3 bytes signed; load key session)."""
        if not -(1 << 23) <= amount < 1 << 23:
            raise SessionStateError("an SV reload is 3 bytes signed")
        return self._sv(CardCommand.SV_RELOAD, sv_date_time(when), amount)

    def prepare_sv_undebit(self, amount: int, when: datetime) -> CardTransactionManager:
        """Queue an SV Undebit of ``amount`` eurocents, at most 32767 (cancels a debit)."""
        if not 0 <= amount <= 0x7FFF:
            raise SessionStateError("an SV undebit is 0 to 32767 cents")
        return self._sv(CardCommand.SV_UNDEBIT, sv_date_time(when), amount)

    def _sv(self, command: CardCommand, date_time: bytes, amount: int) -> CardTransactionManager:
        session = self._session
        if session is None:
            raise SessionStateError("SV operations need an open secure session")
        if not self._app().layout.stored_value:
            raise SessionStateError("this application has no stored value")
        if not any(p.command is CardCommand.SV_GET for p in self._pending):
            self.prepare_sv_get(debit=command is not CardCommand.SV_RELOAD)
        mac_size = session.opening.mode.sv_signature_size[0]
        lc = (18 if command is CardCommand.SV_RELOAD else 15) + mac_size
        return self._modification(PreparedCommand(command, b"", data=date_time, amount=amount), lc)

    @property
    def last_sv_operation(self) -> SVOperation | None:
        """The last SV operation the card accepted in the open session (for the journal intent,
        built right before the close: the card's SV log entry is then fully known)."""
        if self._session is None or not self._session.sv_operations:
            return None
        return self._session.sv_operations[-1]

    def prepare_invalidate(self) -> CardTransactionManager:
        """Queue an Invalidate of the current application (in session)."""
        return self._modification(PreparedCommand(CardCommand.INVALIDATE, cmd.invalidate()), 0)

    def prepare_rehabilitate(self) -> CardTransactionManager:
        """Queue a Rehabilitate of the current application (in session, load key)."""
        return self._modification(PreparedCommand(CardCommand.REHABILITATE, cmd.rehabilitate()), 0)

    # -- process ----------------------------------------------------------------------------
    def process_commands(self) -> None:
        """Send every queued command now, one by one (digested when a session is open).

        Outside a session only reads (Read Records, SV Get) can be queued.
        """
        pending, self._pending = self._pending, []
        for prepared in pending:
            self._process_one(prepared)

    def _require_sam(self) -> SAMResource:
        if self.sam is None:
            raise SessionStateError("a secure session needs a SAM")
        return self.sam

    def _process_one(self, prepared: PreparedCommand) -> None:
        session = self._session
        if prepared.command in (
            CardCommand.SV_DEBIT,
            CardCommand.SV_RELOAD,
            CardCommand.SV_UNDEBIT,
        ):
            self._process_sv(prepared)
            return
        data, sw = self._card.transmit(prepared.command, prepared.apdu)
        if session is not None:
            self._digest_buffer += [digest_form(prepared.apdu), data + sw.to_bytes(2, "big")]
        check_card(prepared.command, sw)
        app = self._app()
        if prepared.command is CardCommand.READ_RECORDS:
            assert prepared.file is not None
            if prepared.apdu[3] & 0x07 == cmd.READ_ONE:
                assert prepared.record is not None
                app.set_record(prepared.file, prepared.record, data)
            else:
                for number, record in parse_records(data).items():
                    app.set_record(prepared.file, number, record)
        elif prepared.command is CardCommand.SV_GET:
            answer = cmd.parse_sv_get(data)
            debit = prepared.apdu[3] == cmd.SV_GET_DEBIT
            log_record = answer.debit_log if debit else answer.load_log
            app.sv = SVState(
                answer.tnum,
                answer.balance,
                (log_record or b"").ljust(RECORD_SIZE, b"\x00"),
                answer.kvc,
            )
            if session is not None:
                header = cmd.sv_get_header(prepared.apdu)
                session.sv_get = (header, data + sw.to_bytes(2, "big"), answer)
        elif session is not None:
            self._committed_later.append((prepared, data))

    def _process_sv(self, prepared: PreparedCommand) -> None:
        """SV Prepare in the SAM, then the SV command to the card (Calypso order). The card's SV
        signature comes with its Close Secure Session answer; SV Check follows the close."""
        session = self._session
        sam = self._require_sam()
        if session is None or session.sv_get is None:
            raise SessionStateError("SV operation without an SV Get in the session")
        info = sam.info
        if info is None:
            raise EngineError("SV operations need a Calypso SAM (its serial goes in the command)")
        ins = {
            CardCommand.SV_DEBIT: cmd.INS_SV_DEBIT,
            CardCommand.SV_RELOAD: cmd.INS_SV_RELOAD,
            CardCommand.SV_UNDEBIT: cmd.INS_SV_UNDEBIT,
        }[prepared.command]
        header, response, answer = session.sv_get
        mode = session.opening.mode
        date_time = prepared.data
        partial = cmd.sv_partial(
            ins, prepared.amount, date_time[:2], date_time[2:], answer.kvc, mode
        )
        self._flush_digest()
        prepared_by_sam = sam.sv_prepare(header, response, partial)
        apdu = cmd.sv_operation(partial, prepared_by_sam, info.serial)
        data, sw = self._card.transmit(prepared.command, apdu)
        self._digest_buffer += [digest_form(apdu), data + sw.to_bytes(2, "big")]
        check_card(prepared.command, sw)
        delta = -prepared.amount if prepared.command is CardCommand.SV_DEBIT else prepared.amount
        session.sv_operations.append(
            SVOperation(
                prepared.command,
                prepared.amount,
                date_time,
                answer.kvc,
                info.serial,
                int.from_bytes(prepared_by_sam[3:6], "big"),
                answer.balance + delta,
                answer.tnum + 1,
            )
        )
        session.sv_get = None
        self._committed_later.append((prepared, data))

    def _flush_digest(self) -> None:
        """Give the SAM the digest elements kept so far (Digest Update Multiple, in order).

        Digest Init itself waits until here: a session the terminal abandons after reading the
        opening (:meth:`abandon_session`) costs the SAM nothing more than its challenge.
        """
        sam = self._require_sam()
        opening = self._digest_init_pending
        if opening is not None:
            sam.select_diversifier(self.card.serial)
            sam.digest_init(opening.kif, opening.kvc, opening.response, opening.mode)
            self._digest_init_pending = None
        elements, self._digest_buffer = self._digest_buffer, []
        if elements:
            sam.digest_elements(elements)

    def process_opening(
        self, role: KeyRole, *, read: tuple[str, int] | None = None
    ) -> SessionOpening:
        """Open a secure session on the current application with key ``role``.

        Args:
            role: the key role the modifications need (``DEBIT`` at a gate).
            read: ``(file, record)`` to read in the Open Secure Session command itself (free:
                it is part of the digest's first element, no Digest Update).

        Returns:
            What the card answered; also recorded in the image (transaction counter,
            ratification flag, the record).
        """
        if self._session is not None:
            raise SessionStateError("a secure session is already open")
        sam = self._require_sam()
        app = self._app()
        if not self.card.serial:
            raise SessionStateError("card serial unknown: select the application with its FCI")
        mode = sam.session_mode(app.rev32_mode)
        challenge = sam.get_challenge(mode)
        sfi, record = 0, 0
        if read is not None:
            sfi, record = app.layout.file(read[0]).sfi, read[1]
        data = self._send_checked(
            CardCommand.OPEN_SECURE_SESSION,
            cmd.open_secure_session(role.key_index, challenge, sfi, record, mode=mode),
        )
        answer = cmd.parse_open_secure_session(data, mode)
        opening = SessionOpening(
            transaction_counter=answer.transaction_counter,
            previous_session_ratified=answer.previous_session_ratified,
            kif=answer.kif,
            kvc=answer.kvc,
            record=answer.record,
            response=data,
            mode=mode,
        )
        self.card.transaction_counter = opening.transaction_counter
        self.card.previous_session_ratified = opening.previous_session_ratified
        if read is not None and opening.record:
            app.set_record(read[0], read[1], opening.record)
        self._digest_init_pending = opening  # sent with the first digest elements
        self._session = _Session(app.layout, role, opening, buffer_limit=app.session_buffer_bytes)
        self._committed_later = []
        self._digest_buffer = []
        queued, self._pending = self._pending, []
        for prepared in queued:  # commands prepared before the opening go into the session
            self._pending.append(prepared)
            if prepared.command.modifies:
                self._session.modifications += 1
                self._session.buffer += len(prepared.data) + MODIFICATION_OVERHEAD
        return opening

    def _anticipate(self, prepared: PreparedCommand) -> bytes | None:
        """The response the card will give to ``prepared`` (data + SW), or ``None``."""
        if prepared.command in (
            CardCommand.UPDATE_RECORD,
            CardCommand.APPEND_RECORD,
            CardCommand.INVALIDATE,
            CardCommand.REHABILITATE,
        ):
            return SW_OK
        if prepared.command in (CardCommand.INCREASE, CardCommand.DECREASE):
            assert prepared.file is not None and prepared.record is not None
            value = self._app().counter(prepared.file, prepared.record)
            if value is None:
                return None
            # Earlier queued changes of the same counter count too.
            for earlier in self._pending:
                if earlier is prepared:
                    break
                if earlier.file == prepared.file and earlier.record == prepared.record:
                    if earlier.command is CardCommand.INCREASE:
                        value += earlier.amount
                    elif earlier.command is CardCommand.DECREASE:
                        value -= earlier.amount
            if prepared.command is CardCommand.INCREASE:
                value += prepared.amount
            else:
                value -= prepared.amount
            if not 0 <= value < 1 << (8 * COUNTER_SIZE):
                return None
            return value.to_bytes(COUNTER_SIZE, "big") + SW_OK
        return None

    def process_closing(
        self,
        *,
        ratify_now: bool = False,
        before_close: Callable[[], None] | None = None,
    ) -> SessionClosing:
        """Send the queued commands and close the session; the card commits everything or nothing.

        Args:
            ratify_now: close with ratification at once (P1 ``80``); by default the close asks
                for a ratification command (:meth:`process_ratification`), so that a lost close
                answer leaves the card "not ratified" (docs/secure-session.md).
            before_close: called after every modification was accepted and right before Close
                Secure Session is sent (the journal's ``begin`` goes here: the intent is durable
                before the card can commit). If it raises, the session is cancelled and the
                exception propagates.

        Raises:
            CardError: a modification or the close was refused (the session is cancelled:
                nothing changed on the card). ``6988`` at the close: signature refused.
            CommunicationError: a reader failed. For ``CLOSE_SECURE_SESSION`` with
                ``may_have_reached_card`` the card may have committed: treat as uncertain.
                For any earlier command the session is lost on the card (nothing committed).
            CardAuthenticationError: the card answered the close but its signature did not
                verify, or the SAM reader failed before checking it (the cause is then the
                SAM's ``CommunicationError``): it may have committed; treat as uncertain.
        """
        session = self._session
        if session is None:
            raise SessionStateError("no secure session to close")
        sam = self._require_sam()
        pending, self._pending = self._pending, []
        anticipated = [self._anticipate_in(pending, p) for p in pending]
        can_anticipate = all(a is not None for a in anticipated)
        try:
            if can_anticipate:
                for prepared, answer in zip(pending, anticipated, strict=True):
                    assert answer is not None
                    self._digest_buffer += [digest_form(prepared.apdu), answer]
                self._flush_digest()
                signature = sam.digest_close(session.opening.mode)
                for prepared, answer in zip(pending, anticipated, strict=True):
                    data, sw = self._card.transmit(prepared.command, prepared.apdu)
                    check_card(prepared.command, sw)
                    if data + sw.to_bytes(2, "big") != answer:
                        raise EngineError(
                            f"{prepared.command.value}: the card did not answer as anticipated"
                        )
                    self._committed_later.append((prepared, data))
            else:
                for prepared in pending:
                    self._process_one(prepared)
                self._flush_digest()
                signature = sam.digest_close(session.opening.mode)
            if before_close is not None:
                before_close()
        except CommunicationError:
            self._session = None  # the card lost the session (or the SAM did: it will time out)
            raise
        except BaseException:
            self._cancel_quietly()
            raise
        self._session = None
        data, sw = self._card.transmit(
            CardCommand.CLOSE_SECURE_SESSION,
            cmd.close_secure_session(signature, ratify_now=ratify_now),
        )
        check_card(CardCommand.CLOSE_SECURE_SESSION, sw)
        # The card has committed: the image follows, whatever the SAM says next.
        self._apply_committed()
        self.card.transaction_counter = session.opening.transaction_counter - 1
        self.card.previous_session_ratified = ratify_now
        try:
            postponed, card_signature = cmd.parse_close_answer(data, session.opening.mode)
        except EngineError as exc:
            raise CardAuthenticationError(f"card close answer: {exc}") from exc
        try:
            sam.digest_authenticate(card_signature)
            if len(postponed) != len(session.sv_operations):
                raise CardAuthenticationError("the card's SV signatures are missing")
            for sv_signature in postponed:  # SV Check after the close, as the reference does
                sam.sv_check(sv_signature)
        except SAMError as exc:
            raise CardAuthenticationError(f"card signature: {exc}") from exc
        except CommunicationError as exc:
            # The SAM reader failed after the card answered its close: the card committed, and
            # nothing proves it genuine. Uncertain, like a signature that did not verify.
            raise CardAuthenticationError(f"card signature not checked: {exc}") from exc
        return SessionClosing(
            card_signature=card_signature,
            transaction_counter=session.opening.transaction_counter - 1,
            ratified=ratify_now,
            anticipated=can_anticipate,
        )

    def _anticipate_in(
        self, pending: list[PreparedCommand], prepared: PreparedCommand
    ) -> bytes | None:
        saved, self._pending = self._pending, pending
        try:
            return self._anticipate(prepared)
        finally:
            self._pending = saved

    def _apply_committed(self) -> None:
        app = self._app()
        for prepared, data in self._committed_later:
            if prepared.command is CardCommand.UPDATE_RECORD:
                assert prepared.file is not None and prepared.record is not None
                app.set_record(prepared.file, prepared.record, prepared.data)
            elif prepared.command is CardCommand.APPEND_RECORD:
                assert prepared.file is not None
                app.append_record(prepared.file, prepared.data)
            elif prepared.command in (CardCommand.INCREASE, CardCommand.DECREASE):
                assert prepared.file is not None and prepared.record is not None
                app.set_counter(prepared.file, prepared.record, int.from_bytes(data[:3], "big"))
            elif prepared.command in (
                CardCommand.SV_DEBIT,
                CardCommand.SV_RELOAD,
                CardCommand.SV_UNDEBIT,
            ):
                if app.sv is not None:
                    delta = (
                        -prepared.amount
                        if prepared.command is CardCommand.SV_DEBIT
                        else (prepared.amount)
                    )
                    app.sv = SVState(app.sv.tnum + 1, app.sv.balance + delta, b"", app.sv.kvc)
            elif prepared.command is CardCommand.INVALIDATE:
                app.invalidated = True
            elif prepared.command is CardCommand.REHABILITATE:
                app.invalidated = False
        self._committed_later = []

    def _cancel_quietly(self) -> None:
        self._session = None
        self._pending = []
        self._digest_buffer = []
        self._digest_init_pending = None
        try:
            self._card.transmit(CardCommand.CLOSE_SECURE_SESSION, cmd.cancel_secure_session())
        except EngineError:
            log.debug("cancel of the secure session not delivered; the card drops it anyway")

    def process_cancel(self) -> None:
        """Cancel the open session on purpose (Close Secure Session without signature).

        Nothing of the session is committed. Safe to call with no session open.
        """
        if self._session is None:
            self._pending = []
            return
        self._cancel_quietly()

    def abandon_session(self) -> None:
        """Forget the open session without sending anything (no signature, no cancel command).

        For a terminal that opened a session to read the counters and the transaction counter
        and then needs another application first: the next Select Application drops the
        session on the card (anti-tearing: nothing of it is committed), so the cancel command
        would be one APDU for nothing. Safe to call with no session open.
        """
        self._session = None
        self._pending = []
        self._digest_buffer = []
        self._digest_init_pending = None

    def process_ratification(self) -> None:
        """Send the ratification command after a close with ``ratify_now=False``."""
        self._card.transmit(CardCommand.RATIFICATION, cmd.ratification())
        self.card.previous_session_ratified = True

    def process_get_traceability(self) -> int:
        """Get Data ``01 85``: refresh the serial and transaction counter, outside a session."""
        data = self._send_checked(CardCommand.GET_DATA, cmd.get_data_traceability())
        if len(data) >= 13 and data[0] == 0xC7:
            self.card.serial = data[2:10]
            self.card.transaction_counter = int.from_bytes(data[10:13], "big")
        assert self.card.transaction_counter is not None
        return self.card.transaction_counter
