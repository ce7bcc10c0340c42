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
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from card_schema.errors import RegionCardError
from firmware_host.readers.base import Reader, ReaderError
from terminal.desk.plan import CardPlan, PlanStep, WrappedCardKey, steps_left
from terminal.engine import (
    APDUCounter,
    CardSelection,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMResource,
    select_card,
)
from terminal.engine.image import CalypsoCard

log = logging.getLogger(__name__)

INS_LOAD_CARD_KEY = 0xD8
SW_OK = b"\x90\x00"
DESK_LOCATION = 0x0DE5C000  # SV log "location" of desk reloads


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
        EngineError: the SAM refused the Select Diversifier, or its reader failed.
    """
    sam.select_diversifier(card_serial, df_name)
    data = bytes([key.kif, key.version]) + key.wrapped_key
    apdu = bytes([0x80, INS_LOAD_CARD_KEY, 0x00, 0x00, len(data)]) + data
    if not sam.reader.connected:
        sam.reader.connect()
    try:
        response = sam.reader.transmit(apdu)
    except ReaderError as exc:
        raise SAMKeyError(f"SAM reader failed: {exc}") from exc
    if response[-2:] != SW_OK:
        raise SAMKeyError(
            f"SAM refused the wrapped {key.application} {key.role.value} key "
            f"({response[-2:].hex().upper()})"
        )


class CardWriter:
    """Writes plans with one card reader and one desk SAM.

    Args:
        card_reader: the desk's contactless reader.
        sam_reader: the reader holding the desk SAM.
        clock: current time for SV log dates (injected in tests).
    """

    def __init__(
        self,
        card_reader: Reader,
        sam_reader: Reader,
        *,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.card_reader = card_reader
        self.sam = SAMResource(sam_reader, APDUCounter())
        self._clock = clock

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
            except (ReaderError, CommunicationError) as exc:
                self._drop_card()
                raise CardPulled(step, exc) from exc
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
        tm.process_opening(step.role)
        for write in step.writes:
            tm.prepare_update_record(write.file, write.record, write.data)
        if step.sv_reload is not None:
            tm.prepare_sv_reload(step.sv_reload.amount, self._clock(), DESK_LOCATION)
        closing = tm.process_closing(ratify_now=True)
        return StepResult(step, closing.transaction_counter, False)

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


__all__ = [
    "CardPulled",
    "CardStateError",
    "CardWriter",
    "DeskWriteError",
    "SAMKeyError",
    "StepResult",
    "WrongCard",
    "load_card_key",
    "read_card_serial",
]
