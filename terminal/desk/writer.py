"""Write a :class:`~terminal.desk.plan.CardPlan` on the card on the desk reader, step by step.

Each step is one secure session (``terminal.engine``) opened with a card key the desk SAM holds
only for this card: the plan's wrapped key goes to the SAM with **Load Card Key**
(``80 D8 00 00 1A KIF KVC wrapped(24)``, docs/secure-session.md), right after a Select
Diversifier naming the card and the application; the engine's own Select Diversifier for the same
card keeps it, and Digest Init computes the session key with it. The desk SAM holds no master key.

Idempotence (what makes a pulled card resumable, docs/desk.md):

- record writes carry the final content: before opening a session the writer reads the records
  (free reading) and skips a step whose records already hold it;
- an SV reload names the SV transaction number the card must show before it: ``tnum_before``
  means "not applied yet", ``tnum_before + 1`` with ``balance_before + amount`` means "already
  applied" (the card committed but the answer was lost): the card's own counter says it, and the
  reload is never applied twice. Anything else stops the job (:class:`CardStateError`).

Journal (optional, ``docs/desk.md`` "Journal and uploads"): with a terminal
:class:`~terminal.journal.store.Journal`, every **load step** (the steps opened with the load key:
``contract.*``, ``aid``, ``sv``) runs through
:func:`~terminal.engine.journaled.run_journaled_session` like the gate's and the till's sessions:
the intent is on disk before Close Secure Session, the record is committed with the SAM's
traceable signature, a lost close answer leaves it UNCERTAIN. When the card comes back, the step
is read again before anything is written (the idempotence check above): that reading is the
evidence :meth:`Journal.resolve <terminal.journal.store.Journal.resolve>` decides from (the SV load
log for a reload, the step's first record for a contract or the aid counters). Personalisation
steps (``perso.*``, ``remove.*``, issuer key) are not journaled: they move no money and no
counter, and what they write is the holder's own data (profiles, student record, employment
situation), which the upload format keeps out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from card_schema.crypto import KeyRole
from card_schema.en1545 import EPOCH
from card_schema.errors import RegionCardError, SchemaError
from card_schema.layout import RECORD_SIZE
from card_schema.records import decode_record, encode_record
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from firmware_host.readers.base import Reader, ReaderError
from terminal.desk.plan import CardPlan, PlanStep, WrappedCardKey, steps_left
from terminal.engine import (
    APDUCounter,
    CardSelection,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMError,
    SAMResource,
    SessionOpening,
    sam_unreachable,
    select_card,
)
from terminal.engine.image import ApplicationImage, CalypsoCard
from terminal.engine.journaled import SessionOutcome, run_journaled_session
from terminal.engine.transaction import SVOperation
from terminal.journal.store import Journal

log = logging.getLogger(__name__)

BLANK_RECORD = bytes(RECORD_SIZE)
WALLET_PURSE = "wallet.sv"
AID_PURSES = {  # cursus.aid_counters field -> purse name in the upload (docs/batch-format.md)
    "books_equipment": "cursus.books_aid",
    "sport_leisure": "cursus.sport_aid",
    "canteen": "cursus.canteen_aid",
}
CONTRACT_LAYOUT_TARIFF = 0x0FF1  # the desk writes contracts in the generic FF layout


class DeskWriteError(RegionCardError):
    """Root of the desk writer's errors."""


class CardPulled(DeskWriteError):
    """The card left the reader (or the link failed) during a step: the job can be resumed.

    Attributes:
        step: the step being written (``None`` when the card left between steps or at selection).
        may_have_committed: the last command may have been a committed close.
    """

    def __init__(self, step: PlanStep | None, cause: BaseException) -> None:
        self.step = step
        self.may_have_committed = bool(getattr(cause, "may_have_reached_card", False))
        where = step.id if step is not None else "selection"
        super().__init__(f"card removed during {where}: {cause}")


class SAMUnavailable(DeskWriteError):
    """The desk SAM's reader failed during a step: the job can be resumed once it answers.

    Nothing is wrong with the card or the job, and lifting the card does not help. A session the
    card closed without the SAM checking its signature is journaled UNCERTAIN, and the step's
    records, read again at the next attempt, decide it (:meth:`CardWriter.write`).

    Attributes:
        step: the step being written.
    """

    def __init__(self, step: PlanStep, cause: BaseException) -> None:
        self.step = step
        super().__init__(f"desk SAM unreachable during {step.id}: {cause}")


class WrongCard(DeskWriteError):
    """The card on the reader is not the one the job is writing."""

    def __init__(self, expected: bytes, found: bytes) -> None:
        self.expected, self.found = expected, found
        super().__init__(f"expected card {expected.hex().upper()}, found {found.hex().upper()}")


class CardStateError(DeskWriteError):
    """The card is in a state the plan did not expect (changed elsewhere): not written."""


class SAMKeyError(DeskWriteError):
    """The desk SAM refused a wrapped card key (wrong transport key, or no transport key)."""


@dataclass(frozen=True)
class StepResult:
    """A step now on the card.

    Attributes:
        step: the step.
        card_tx_counter: the card's transaction counter after the session that wrote it
            (Calypso counts down: the value the next Open Secure Session answers); for a step
            found already on the card, its counter now (Get Data).
        already_written: the card already held the step's content (a resumed job).
    """

    step: PlanStep
    card_tx_counter: int
    already_written: bool


def _link_failure(step: PlanStep, exc: BaseException) -> DeskWriteError | None:
    """The resumable failure a reader error under ``step`` means (``None``: not a link failure).

    The SAM's reader failing (even after the card's close, see :func:`sam_unreachable`) is
    :class:`SAMUnavailable`; the card's reader failing is :class:`CardPulled`.
    """
    if sam_unreachable(exc):
        return SAMUnavailable(step, exc)
    if isinstance(exc, ReaderError | CommunicationError):
        return CardPulled(step, exc)
    return None


def read_card_serial(card_reader: Reader) -> bytes:
    """Connect (afresh), select PLUM and return the card serial (8 bytes).

    Raises:
        CardPulled: no card, or it left.
        DeskWriteError: the card answered but is not a regional card.
    """
    # A fresh connection: the card on the reader may not be the one of the last exchange.
    with contextlib.suppress(ReaderError):
        card_reader.disconnect()
    try:
        card = select_card(card_reader, CardSelection("plum"))
    except (ReaderError, CommunicationError) as exc:
        raise CardPulled(None, exc) from exc
    except EngineError as exc:
        raise DeskWriteError(f"not a regional card: {exc}") from exc
    return card.serial


def load_card_key(
    sam: SAMResource, card_serial: bytes, df_name: bytes, key: WrappedCardKey
) -> None:
    """Give the desk SAM one wrapped card key for the card and application selected.

    Sends SAM Select Diversifier then **Load Card Key** (``80 D8 00 00 1A``).

    Raises:
        SAMKeyError: the SAM refused the key.
        CommunicationError: the SAM's reader failed (``device == "sam"``).
        EngineError: the SAM refused the Select Diversifier.
    """
    sam.select_diversifier(card_serial)
    try:
        sam.load_card_key(key.kif, key.version, key.wrapped_key)
    except SAMError as exc:
        raise SAMKeyError(
            f"SAM refused the wrapped {key.application} {key.role.value} key "
            f"({exc.sw:04X} {exc.status.meaning})"
        ) from exc


class CardWriter:
    """Writes plans with one card reader and one desk SAM.

    Args:
        card_reader: the desk's contactless reader.
        sam_reader: the reader holding the desk SAM.
        clock: current time for SV log dates and journal records (injected in tests).
        journal: the desk terminal's journal, opened as owner; ``None``: nothing is journaled
            (the library level without a terminal identity, as before).
    """

    def __init__(
        self,
        card_reader: Reader,
        sam_reader: Reader,
        *,
        clock: Callable[[], datetime] = datetime.now,
        journal: Journal | None = None,
    ) -> None:
        self.card_reader = card_reader
        self.sam = SAMResource(sam_reader, APDUCounter())
        self._clock = clock
        self.journal = journal
        self.resolved: list[JournalRecord] = []  # uncertain records decided at a resume

    def journaled(self, step: PlanStep) -> bool:
        """Whether ``step`` is journaled: a load step (load key), with a journal given."""
        return self.journal is not None and step.role is KeyRole.LOAD

    def write(
        self,
        plan: CardPlan,
        *,
        done: Iterable[str] = (),
        on_step: Callable[[StepResult], None] | None = None,
        on_start: Callable[[PlanStep, int, int], None] | None = None,
    ) -> list[StepResult]:
        """Write every step of ``plan`` not in ``done``, in order.

        Args:
            plan: what to write.
            done: ids of steps already written (from the job), skipped.
            on_step: called after each step is on the card (report progress there: if it
                raises, writing stops and the step stays on the card).
            on_start: called before each step with (step, its number from 1, number of steps).

        Returns:
            One result per step written now.

        Raises:
            CardPulled: the card left; steps reported through ``on_step`` are on the card, the
                step being written may or may not be (the next attempt finds out).
            SAMUnavailable: the SAM's reader failed; the same as a pulled card for the steps,
                but the card may stay on the reader.
            WrongCard: another card is on the reader.
            CardStateError, SAMKeyError, DeskWriteError: the job cannot go on.
        """
        finished = set(done)
        todo = steps_left(plan, finished)
        results: list[StepResult] = []
        if not todo:
            return results
        total = len(plan.steps)
        serial = read_card_serial(self.card_reader)
        if serial != plan.card_serial:
            raise WrongCard(plan.card_serial, serial)
        for step in todo:
            number = plan.steps.index(step) + 1
            if on_start is not None:
                on_start(step, number, total)
            try:
                result = self._write_step(plan, step)
            except (ReaderError, EngineError) as exc:
                failure = _link_failure(step, exc)
                if failure is None:
                    raise
                self._drop_card()
                raise failure from exc
            results.append(result)
            if on_step is not None:
                on_step(result)
        return results

    def _drop_card(self) -> None:
        with contextlib.suppress(ReaderError):
            self.card_reader.disconnect()

    def _write_step(self, plan: CardPlan, step: PlanStep) -> StepResult:
        card = select_card(self.card_reader, CardSelection(step.application))
        tm = CardTransactionManager(self.card_reader, card, self.sam)
        app = card.application(step.application)
        if step.writes:
            for file in sorted({w.file for w in step.writes}):
                tm.prepare_read_records(file)
            tm.process_commands()
        sv_already = False
        if step.sv_reload is not None:
            sv_already = self._sv_state(tm, card, step)
        if self.journaled(step):
            self._resolve(tm, plan, step, app)
        if sv_already or step.sv_reload is None:
            if all(app.record(w.file, w.record) == w.data for w in step.writes):
                log.info("step %s already on card %s", step.id, plan.card_serial.hex())
                # Only the step whose close answer was lost can be found here unreported; no
                # session ran since (the desk held the card), so the card's counter now is the
                # one that session left: it confirms the step's loads.
                return StepResult(step, tm.process_get_traceability(), True)
            if sv_already:
                raise CardStateError(f"step {step.id}: SV applied but records differ")
        key = plan.key(step.application, step.role)
        load_card_key(self.sam, plan.card_serial, app.df_name, key)
        if self.journaled(step):
            return self._journaled_session(tm, plan, step, app)
        tm.process_opening(step.role)
        _prepare_step(tm, step, self._clock())
        closing = tm.process_closing(ratify_now=True)
        return StepResult(step, closing.transaction_counter, False)

    # -- journal ----------------------------------------------------------------------------
    def _journaled_session(
        self, tm: CardTransactionManager, plan: CardPlan, step: PlanStep, app: ApplicationImage
    ) -> StepResult:
        """One load step through :func:`run_journaled_session` (write-ahead, signed, decided).

        Raises:
            CommunicationError: the card left (the record is ABORTED, or UNCERTAIN when the
                close may have reached the card: the next sight of the card decides it).
            EngineError: the card or the SAM refused (the record, if begun, is ABORTED).
        """
        assert self.journal is not None
        when = self._clock()
        movements = step_movements(step, app)
        product_code = contract_product_code(step)

        def prepare(_: SessionOpening) -> None:
            _prepare_step(tm, step, when)

        def intent_of(opening: SessionOpening) -> TransactionIntent:
            return TransactionIntent(
                kind=TransactionKind.SV_RELOAD if step.sv_reload else TransactionKind.LOAD,
                application=step.application,
                card_serial=plan.card_serial,
                card_tx_counter=opening.transaction_counter,
                occurred_at=when.astimezone(UTC),
                movements=movements,
                product_code=product_code,
                written_event=written_witness(step, tm.last_sv_operation),
            )

        outcome = run_journaled_session(
            tm, self.sam, self.journal, prepare, intent_of, ratify_now=True, role=step.role
        )
        if outcome.status == SessionOutcome.COMMITTED:
            counter = tm.card.transaction_counter
            assert counter is not None
            return StepResult(step, counter, False)
        log.info("step %s journaled %s: %s", step.id, outcome.status, outcome.error)
        if outcome.cause is not None:
            raise outcome.cause
        raise DeskWriteError(f"step {step.id}: {outcome.status} {outcome.error}")

    def _resolve(
        self, tm: CardTransactionManager, plan: CardPlan, step: PlanStep, app: ApplicationImage
    ) -> None:
        """Decide this card's UNCERTAIN records from the step's records just read.

        A load step left uncertain (its close answer lost, or the station stopped) is the first
        step not reported, so it is the one being resumed here: the card's counter and the
        step's witness (:func:`current_witness`) decide it, before the idempotence check, and
        before a new session could journal the same load again. Records of other steps, given
        this witness, stay UNCERTAIN unless the counter proves nothing was committed.
        """
        assert self.journal is not None
        if not self.journal.records([TransactionState.UNCERTAIN], card_serial=plan.card_serial):
            return
        counter = tm.process_get_traceability()
        decided = self.journal.resolve(plan.card_serial, counter, [current_witness(step, app)])
        for record in decided:
            log.info("journal record %d: %s", record.seq, record.state.value)
        self.resolved.extend(r for r in decided if r.state is not TransactionState.UNCERTAIN)

    @staticmethod
    def _sv_state(tm: CardTransactionManager, card: CalypsoCard, step: PlanStep) -> bool:
        """Whether the step's SV reload is already on the card.

        Raises:
            CardStateError: the card's SV state matches neither before nor after the reload.
        """
        assert step.sv_reload is not None
        tm.prepare_sv_get(debit=False)
        tm.process_commands()
        sv = card.current_application.sv
        if sv is None:
            raise CardStateError("no SV state answered")
        reload = step.sv_reload
        if sv.tnum == reload.tnum_before and sv.balance == reload.balance_before:
            return False
        if (
            sv.tnum == reload.tnum_before + 1
            and sv.balance == reload.balance_before + reload.amount
        ):
            return True
        raise CardStateError(
            f"porte-monnaie modifié ailleurs (n° {sv.tnum}, solde {sv.balance}) / "
            f"wallet changed elsewhere: expected tnum {reload.tnum_before}"
        )


def _prepare_step(tm: CardTransactionManager, step: PlanStep, when: datetime) -> None:
    """Queue the step's session commands: its record updates, then its SV reload dated ``when``."""
    for write in step.writes:
        tm.prepare_update_record(write.file, write.record, write.data)
    if step.sv_reload is not None:
        tm.prepare_sv_reload(step.sv_reload.amount, when)


def step_movements(step: PlanStep, app: ApplicationImage) -> tuple[PurseMovement, ...]:
    """The purses and counters a load step changes: the step's records against the card's.

    ``app`` holds the records read before the session (free reading). Money: the SV reload
    (``wallet.sv``) and the Cursus aid counters (``cursus.<purpose>_aid``), in eurocents; counts:
    the PLUM trip counters (``plum.counter.<n>``). Other records (contracts, the contract list)
    are rights without a balance.
    """
    movements: list[PurseMovement] = []
    for write in step.writes:
        if (step.application, write.file) == ("cursus", "aid_counters"):
            names, unit = AID_PURSES, PurseUnit.EUROCENT
            record_type = "cursus.aid_counters"
        elif (step.application, write.file) == ("plum", "counters"):
            names = {f"counter_{n}": f"plum.counter.{n}" for n in range(1, 10)}
            unit, record_type = PurseUnit.COUNT, "plum.counters"
        else:
            continue
        before = decode_record(record_type, app.record(write.file, write.record) or BLANK_RECORD)
        after = decode_record(record_type, write.data)
        for field_name, purse in names.items():
            old, new = int(before[field_name]), int(after[field_name])
            if new != old:
                movements.append(PurseMovement(purse, unit, new - old, old, new))
    if step.sv_reload is not None:
        reload = step.sv_reload
        movements.append(
            PurseMovement(
                WALLET_PURSE,
                PurseUnit.EUROCENT,
                reload.amount,
                reload.balance_before,
                reload.balance_before + reload.amount,
            )
        )
    return tuple(movements)


def contract_product_code(step: PlanStep) -> int | None:
    """The product (tariff) code of the contract a step writes, ``None`` for other steps."""
    for write in step.writes:
        if (step.application, write.file) == ("plum", "contracts"):
            try:
                fields = decode_record("plum.contract", write.data, tariff=CONTRACT_LAYOUT_TARIFF)
                return int(fields["ContractTariff"])
            except (SchemaError, KeyError, TypeError, ValueError):
                return None
    return None


def sv_load_log_entry(operation: SVOperation) -> bytes:
    """The SV load log record a reload writes (``wallet.sv_load_log``: the card keeps the last).

    Calypso's 22-byte load log, as the card writes it from the SV Reload command (date, free
    bytes zero, KVC, balance after, amount, time, SAM id, SAM transaction number, SV transaction
    number after), zero padded to the 29-byte record.
    """
    return encode_record(
        "wallet.sv_load_log",
        {
            "date": _en1545_date(operation.date_time[:2]),
            "free_1": 0,
            "kvc": operation.kvc,
            "free_2": 0,
            "balance": operation.balance_after,
            "amount": operation.amount,
            "time": _en1545_time(operation.date_time[2:]),
            "sam_id": int.from_bytes(operation.sam_id, "big"),
            "sam_tnum": operation.sam_tnum,
            "sv_tnum": operation.tnum_after,
        },
    )


def _en1545_date(raw: bytes) -> str:
    return (EPOCH + timedelta(days=int.from_bytes(raw, "big"))).isoformat()


def _en1545_time(raw: bytes) -> str:
    minutes = int.from_bytes(raw, "big")
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def written_witness(step: PlanStep, operation: SVOperation | None) -> bytes | None:
    """What the step leaves on the card for a later reading to recognise (``written_event``).

    A reload: the SV load log record it writes (``operation``: the session's SV Reload, whose
    SAM numbers SV Prepare gave). A record step: its first record's final content (a contract
    or the aid counters: products and amounts, the same facts as the record's product code and
    movements, nothing about the holder).
    """
    if step.sv_reload is not None and operation is not None:
        return sv_load_log_entry(operation)
    return step.writes[0].data if step.writes else None


def current_witness(step: PlanStep, app: ApplicationImage) -> bytes:
    """The card's current value of :func:`written_witness` (read just before), never empty.

    Never empty on purpose: :func:`terminal.journal.recovery.decide_from_card` reads an empty
    log as "no session wrote it" (ABORTED); one record, equal or not, can only commit the
    matching record or leave the others UNCERTAIN.
    """
    if step.sv_reload is not None:
        sv = app.sv
        return (sv.last_log if sv is not None and sv.last_log else b"") or BLANK_RECORD
    if step.writes:
        first = step.writes[0]
        return app.record(first.file, first.record) or BLANK_RECORD
    return BLANK_RECORD


__all__ = [
    "CardPulled",
    "CardStateError",
    "CardWriter",
    "DeskWriteError",
    "SAMKeyError",
    "SAMUnavailable",
    "StepResult",
    "WrongCard",
    "load_card_key",
    "read_card_serial",
]
