"""The canteen till: one tap, one decision, one or two secure sessions, one journal line each.

A meal is paid from two applications of the card: the canteen aid counter lives in Cursus, the
stored-value purse in the wallet (Ma région numérique). A Calypso secure session covers one
application (one DF), so a meal with a wallet part takes **two sessions**, each atomic on its own
(``docs/canteen.md``, "Two sessions"):

1. **Cursus session** (debit key): Decrease of the canteen aid counter (when the aid pays
   something) and Append Record of the meal to the canteen log, which records both parts. It is
   the meal: once committed, the pupil cannot take a second meal in this service.
2. **Wallet session** (debit key), only when the aid does not cover the price: SV Debit of the
   rest, dated with the meal's own date and time and located at the till's point-of-sale number,
   so that the card's SV debit log names the meal it paid.

Each session is journaled on its own (``journal.begin`` right before its Close Secure Session,
``commit`` with the SAM's traceable signature after a verified close): two records, each with
its own card transaction counter, each decided from its own log at a later tap if its close
answer is lost. If the wallet session fails after the Cursus session committed, the meal is on
the card with its wallet part unpaid: the till does not serve, says "Présentez à nouveau la
carte", and at the next tap the rules see the meal in the canteen log with no matching debit in
the SV log and take only the wallet part (:data:`MealReason.PAYMENT_COMPLETED`). If the pupil
never comes back, the Cursus record (uploaded) carries the unpaid amount and the daily report
lists it as pending.

Every tap starts by reading the card (wallet SV log and balance, Cursus student record, aid
counters, canteen log, transaction counter) and resolving this card's uncertain journal records
from those logs before deciding, so a session whose close answer was lost is never charged again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from card_schema.crypto import KeyRole
from card_schema.errors import SchemaError
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from firmware_host.readers.base import Reader, ReaderError
from terminal.actions.cursus import AidCredit
from terminal.actions.writer import ActionWriter
from terminal.canteen.menu import MenuBook
from terminal.canteen.model import (
    BLANK_RECORD,
    CANTEEN_AID_COUNTER,
    AidCounters,
    CanteenLogEntry,
    Student,
    WalletDebit,
    non_blank,
)
from terminal.canteen.reasons import MealReason
from terminal.canteen.refusals import Refusal, RefusalLog
from terminal.canteen.rules import MealDecision, decide_meal, wallet_debit_matches
from terminal.canteen.screen import Screen
from terminal.canteen.tariff import CanteenTariff
from terminal.engine import (
    APDUCounter,
    ApplicationImage,
    CalypsoCard,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMResource,
    SessionOpening,
    sam_unreachable,
)
from terminal.engine.journaled import SessionOutcome as SessionOutcome  # moved: shared
from terminal.engine.journaled import run_journaled_session
from terminal.engine.svlog import sv_debit_intent
from terminal.fares.local_time import to_local
from terminal.journal.store import Journal

log = logging.getLogger(__name__)

CURSUS, WALLET = "cursus", "wallet"
CANTEEN_AID_PURSE = "cursus.canteen_aid"
SERVICE_CODES = {"breakfast": 1, "lunch": 2, "snack": 3, "dinner": 4}  # cursus.canteen_log codes


@dataclass
class TapResult:
    """What one tap did.

    Attributes:
        reason: why the pupil is served or not (the first screen line is its text).
        lines: everything the screen showed for this tap.
        decision: the rules' decision, ``None`` if the card could not be read.
        receipt: the French receipt line of a served meal.
        sessions: the outcome of each secure session run by this tap, in order.
        recovered: this card's journal records that were uncertain and that this tap decided.
        card_apdus: card APDUs sent during the tap.
        sam_apdus: SAM APDUs sent during the tap.
    """

    reason: MealReason
    lines: list[str]
    decision: MealDecision | None = None
    receipt: str | None = None
    sessions: list[SessionOutcome] = field(default_factory=list)
    recovered: list[JournalRecord] = field(default_factory=list)
    card_apdus: int = 0
    sam_apdus: int = 0

    @property
    def served(self) -> bool:
        """Whether the pupil gets the tray."""
        return self.reason.serves


@dataclass
class _CardView:
    """What the till read on the card at the start of a tap."""

    card: CalypsoCard
    cursus: ApplicationImage
    wallet: ApplicationImage | None
    tx_counter: int


class CanteenTill:
    """The canteen till of one school.

    Args:
        reader: the card reader (PC/SC in production).
        sam_reader: the reader holding the till's SAM.
        journal: the till's journal, opened as owner.
        school_uai: the school's UAI.
        prices: service hours and meal prices.
        clock: current time, timezone-aware.
        screen: where the lines go.
        pos_id: point-of-sale number of the till (16 bits), written in the canteen log and as
            the SV location.
        menus: the menu book; without it the screen shows no menu.
        refusals: where refused taps are counted for the daily report; none by default.
        ratify_now: close sessions with immediate ratification instead of the ratification
            command (Calypso practice is deferred ratification; see docs/secure-session.md).
        actions: pending Cursus aid credits of the action list in force, written in the meal's
            session (docs/action-lists.md); none written without it.
    """

    def __init__(
        self,
        reader: Reader,
        sam_reader: Reader,
        journal: Journal,
        school_uai: str,
        prices: CanteenTariff,
        clock: Callable[[], datetime],
        screen: Screen,
        *,
        pos_id: int,
        menus: MenuBook | None = None,
        refusals: RefusalLog | None = None,
        ratify_now: bool = False,
        actions: ActionWriter | None = None,
    ) -> None:
        if not 0 <= pos_id <= 0xFFFF:
            raise ValueError("the point-of-sale number is 16 bits")
        self.reader = reader
        self.sam = SAMResource(sam_reader)
        self.journal = journal
        self.school_uai = school_uai
        self.prices = prices
        self.clock = clock
        self.screen = screen
        self.pos_id = pos_id
        self.menus = menus
        self.refusals = refusals
        self.ratify_now = ratify_now
        self.actions = actions
        self.step_hook: Callable[[str], None] | None = None
        """Called with ``"<application>:<step>"`` at each journaling step of a session (tests
        kill the process there, like the gate's)."""

    # -- screen -----------------------------------------------------------------------------
    def menu_lines(self, now: datetime | None = None) -> list[str]:
        """Today's menu for the service open at ``now`` (or the next lines to show)."""
        if self.menus is None:
            return []
        local = to_local(now or self.clock())
        service = self.prices.service_at(local.time())
        return self.menus.screen_lines(self.school_uai, local.date(), service)

    def show_menu(self) -> None:
        """Show the menu alone (between pupils)."""
        self.screen.show(self.menu_lines())

    # -- one tap ----------------------------------------------------------------------------
    def serve(self) -> TapResult:
        """Handle the card now in the field: read, decide, debit, log, journal, show.

        Never raises for a card, reader or SAM problem: the result says what to tell the pupil.

        Raises:
            JournalError: the journal itself failed (disk): the till must stop.
        """
        now = self.clock()
        counter = APDUCounter()
        self.sam.use_counter(counter)
        try:
            result = self._serve(now, counter)
        except (CommunicationError, ReaderError) as exc:
            if sam_unreachable(exc):
                log.error("SAM unreachable: %s", exc)
                result = TapResult(MealReason.SAM_UNAVAILABLE, [])
            else:
                log.info("tap abandoned while reading the card: %s", exc)
                result = TapResult(MealReason.TAP_AGAIN, [])
        except (EngineError, SchemaError) as exc:
            log.warning("card refused or unreadable: %s", exc)
            result = TapResult(MealReason.CARD_ERROR, [])
        result.card_apdus, result.sam_apdus = counter.card, counter.sam
        self._show(now, result)
        return result

    def _read_card(self, counter: APDUCounter) -> tuple[CardTransactionManager, _CardView | None]:
        atr = self.reader.atr if self.reader.connected else self.reader.connect()
        card = CalypsoCard(atr=atr)
        tm = CardTransactionManager(self.reader, card, self.sam, counter=counter)
        # The wallet first, so that Cursus stays selected for its session (one Select saved).
        wallet = tm.process_select_application(WALLET, reads=("sv_debit_log",))
        if wallet is not None and not wallet.invalidated:
            tm.prepare_sv_get(debit=True)
            tm.process_commands()
        elif wallet is not None:
            wallet = None  # an invalidated wallet cannot pay: as if absent
        cursus = tm.process_select_application(
            CURSUS, reads=("student", "aid_counters", "canteen_log")
        )
        if cursus is None:
            return tm, None
        tx_counter = tm.process_get_traceability()
        return tm, _CardView(card, cursus, wallet, tx_counter)

    def _serve(self, now: datetime, counter: APDUCounter) -> TapResult:
        tm, view = self._read_card(counter)
        if view is None:
            return TapResult(MealReason.NO_STUDENT_RECORD, [])
        if view.cursus.invalidated:
            return TapResult(MealReason.CARD_INVALIDATED, [])
        canteen_raw = view.cursus.file_records("canteen_log")
        sv_raw = view.wallet.file_records("sv_debit_log") if view.wallet is not None else []
        recovered = self._resolve(view, canteen_raw, sv_raw)
        credit = None
        if self.actions is not None:
            self.actions.settle(self.journal, bool(recovered))
            credit = self.actions.plan_cursus(view.card)
            if credit is not None:  # the meal is decided with the aid just granted
                credit.apply(view.cursus)
        decision = decide_meal(
            _student(view.cursus.record("student")),
            AidCounters.from_record(view.cursus.record("aid_counters") or BLANK_RECORD),
            _wallet_balance(view.wallet),
            [e for e in map(CanteenLogEntry.from_record, canteen_raw) if e is not None],
            self.school_uai,
            self.prices,
            now,
            terminal_id=self.pos_id,
            wallet_log=None
            if view.wallet is None
            else [d for d in map(WalletDebit.from_record, sv_raw) if d is not None],
        )
        result = TapResult(decision.reason, [], decision, recovered=recovered)
        if decision.reason is MealReason.ALREADY_SERVED and _served_by_recovery(
            decision, recovered
        ):
            return self._recovered(decision, result)
        if not decision.accepted:
            return result
        if decision.log_entry is not None:
            outcome = self._cursus_session(tm, view, decision, now, canteen_raw, credit)
            result.sessions.append(outcome)
            if not outcome.committed:
                return self._failed(result, outcome, meal_logged=False)
        if decision.wallet_debit:
            meal = decision.meal
            assert meal is not None
            outcome = self._wallet_session(tm, view, decision, meal, now, sv_raw)
            result.sessions.append(outcome)
            if not outcome.committed:
                return self._failed(result, outcome, meal_logged=True)
        self._ratify(tm)
        result.receipt = decision.receipt_line()
        return result

    def _resolve(
        self, view: _CardView, canteen_raw: Sequence[bytes], sv_raw: Sequence[bytes]
    ) -> list[JournalRecord]:
        """Decide this card's uncertain sessions, each from the log its session wrote to.

        ``Journal.resolve`` tries every uncertain record of the card against the one log it is
        given. Blank (never written) records are left out of both the intents' ``last_events``
        and the logs given here, so a Cursus record is never matched against the wallet's SV
        log (or the reverse): with no record in common the evidence is inconclusive and the
        record waits for the call with its own log. Both logs are tried in turn.
        """
        decided: dict[int, JournalRecord] = {}
        for record in self.journal.resolve(
            view.card.serial, view.tx_counter, non_blank(canteen_raw)
        ):
            decided[record.seq] = record
        if view.wallet is not None:
            for record in self.journal.resolve(
                view.card.serial, view.tx_counter, non_blank(sv_raw)
            ):
                decided[record.seq] = record
        for record in decided.values():
            log.info("journal record %d of this card: %s", record.seq, record.state.value)
        return [decided[seq] for seq in sorted(decided)]

    def _recovered(self, decision: MealDecision, result: TapResult) -> TapResult:
        """The previous tap's session committed after all: serve the meal, charge nothing."""
        meal = decision.previous
        assert meal is not None
        served = MealDecision(
            MealReason.RECOVERED,
            decision.service,
            decision.day,
            price=meal.price,
            aid_before=decision.aid_before + meal.aid_amount,
            wallet_before=None
            if decision.wallet_before is None
            else decision.wallet_before + meal.wallet_amount,
            aid_debit=meal.aid_amount,
            wallet_debit=meal.wallet_amount,
            completes=meal,
            previous=meal,
        )
        result.reason, result.decision = MealReason.RECOVERED, served
        result.receipt = served.receipt_line()
        return result

    def _failed(
        self, result: TapResult, outcome: SessionOutcome, *, meal_logged: bool
    ) -> TapResult:
        if sam_unreachable(outcome.cause):
            log.error("SAM unreachable, session not committed: %s", outcome)
            result.reason = MealReason.SAM_UNAVAILABLE
        elif outcome.error.startswith("card:"):
            result.reason = MealReason.CARD_ERROR
        else:
            result.reason = MealReason.TAP_AGAIN
        if meal_logged:
            result.lines.append("Repas enregistré, paiement porte-monnaie à compléter")
        return result

    # -- sessions ---------------------------------------------------------------------------
    def _cursus_session(
        self,
        tm: CardTransactionManager,
        view: _CardView,
        decision: MealDecision,
        now: datetime,
        canteen_raw: Sequence[bytes],
        credit: AidCredit | None = None,
    ) -> SessionOutcome:
        entry = decision.log_entry
        assert entry is not None
        written = entry.to_record()

        def intent(opening: SessionOpening) -> TransactionIntent:
            movements: tuple[PurseMovement, ...] = ()
            if decision.aid_debit:
                movements = (
                    PurseMovement(
                        CANTEEN_AID_PURSE,
                        PurseUnit.EUROCENT,
                        -decision.aid_debit,
                        decision.aid_before,
                        decision.aid_after,
                    ),
                )
            return TransactionIntent(
                kind=TransactionKind.CANTEEN_MEAL,
                application=CURSUS,
                card_serial=view.card.serial,
                card_tx_counter=opening.transaction_counter,
                occurred_at=now,
                movements=movements,
                product_code=SERVICE_CODES[entry.service.value],
                school_uai=self.school_uai,
                last_events=non_blank(canteen_raw),
                written_event=written,
            )

        def prepare(opening: SessionOpening) -> None:
            if credit is not None:  # credits and the meal's aid in one Update Record
                tm.prepare_update_record("aid_counters", 1, credit.record(decision.aid_debit))
            elif decision.aid_debit:
                tm.prepare_decrease("aid_counters", CANTEEN_AID_COUNTER, decision.aid_debit)
            tm.prepare_append_record("canteen_log", written)

        if credit is None or self.actions is None:
            return self._session(tm, prepare, intent, CURSUS)
        actions = self.actions
        ids = [a.action_id for a in credit.actions]
        seqs: list[int] = []

        def written_ahead(seq: int, made: TransactionIntent) -> None:
            seqs.append(seq)
            actions.written(seq, ids, view.card.serial, made.card_tx_counter)

        outcome = self._session(
            tm, prepare, intent, CURSUS, role=KeyRole.LOAD, after_begin=written_ahead
        )
        actions.ended(seqs[0] if seqs else None, outcome)
        return outcome

    def _wallet_session(
        self,
        tm: CardTransactionManager,
        view: _CardView,
        decision: MealDecision,
        meal: CanteenLogEntry,
        now: datetime,
        sv_raw: Sequence[bytes],
    ) -> SessionOutcome:
        amount = decision.wallet_debit
        try:
            # Any command after a close ratifies it: this Select ratifies the Cursus session.
            wallet = tm.process_select_application(WALLET)
        except CommunicationError as exc:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"reader: {exc}")
        except EngineError as exc:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"card: {exc}")
        if wallet is None:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, "card: no wallet")

        def prepare(opening: SessionOpening) -> None:
            tm.prepare_sv_debit(amount, meal.served_at)

        def intent(opening: SessionOpening) -> TransactionIntent:
            sv = wallet.sv  # this session's SV Get, sent before the close
            operation = tm.last_sv_operation  # SV Prepare gave the SAM's numbers
            assert sv is not None and operation is not None
            return sv_debit_intent(
                kind=TransactionKind.CANTEEN_MEAL,
                card_serial=view.card.serial,
                card_tx_counter=opening.transaction_counter,
                kvc=operation.kvc,
                balance_before=sv.balance,
                sv_tnum_before=sv.tnum,
                amount=amount,
                at=meal.served_at,
                sam_id=operation.sam_id,
                sam_tnum=operation.sam_tnum,
                occurred_at=now,
                last_events=non_blank(sv_raw),
                product_code=SERVICE_CODES[meal.service.value],
                school_uai=self.school_uai,
            )

        return self._session(tm, prepare, intent, WALLET)

    def _session(
        self,
        tm: CardTransactionManager,
        prepare: Callable[[SessionOpening], None],
        intent_of: Callable[[SessionOpening], TransactionIntent],
        application: str,
        *,
        role: KeyRole = KeyRole.DEBIT,
        after_begin: Callable[[int, TransactionIntent], None] | None = None,
    ) -> SessionOutcome:
        """Open, prepare, journal before the close, close, and record what the card did.

        The journal's ``begin`` runs inside the engine's ``before_close`` hook, after every
        modification was accepted and right before Close Secure Session is sent: the intent is
        on disk before the card can commit. The SAM's traceable signature is asked there too,
        once the terminal sequence is known. :attr:`step_hook` hears each step as
        ``"<application>:<step>"`` (``cursus:journal_begin``, ``wallet:close``...).
        """
        return run_journaled_session(
            tm,
            self.sam,
            self.journal,
            prepare,
            intent_of,
            ratify_now=self.ratify_now,
            role=role,
            step=lambda name: self._step(f"{application}:{name}"),
            after_begin=after_begin,
        )

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.step_hook(name)

    def _ratify(self, tm: CardTransactionManager) -> None:
        if self.ratify_now:
            return
        try:
            tm.process_ratification()
        except EngineError as exc:
            # The card left right after the close: it stays "not ratified" and its next Open
            # Secure Session says so; the journal already holds the committed session.
            log.info("ratification not delivered: %s", exc)

    # -- output -----------------------------------------------------------------------------
    def _show(self, now: datetime, result: TapResult) -> None:
        lines = [result.reason.text, *result.lines]
        decision = result.decision
        if result.reason is MealReason.ALREADY_SERVED and decision and decision.previous:
            previous = decision.previous
            lines.append(
                f"Repas enregistré à {previous.served_at:%H:%M} (caisse {previous.terminal_id})"
            )
        if result.receipt:
            lines.append(result.receipt)
        menu = self.menu_lines(now)
        if menu:
            lines += ["", *menu]
        result.lines = lines
        self.screen.show(lines)
        if not result.served and self.refusals is not None:
            self.refusals.append(
                Refusal(
                    at=to_local(now).replace(tzinfo=None, microsecond=0),
                    school_uai=self.school_uai,
                    service=None if decision is None else decision.service,
                    reason=result.reason,
                )
            )


def _student(raw: bytes | None) -> Student | None:
    if raw is None or raw == BLANK_RECORD:
        return None
    try:
        return Student.from_record(raw)
    except SchemaError:
        return None


def _wallet_balance(wallet: ApplicationImage | None) -> int | None:
    if wallet is None or wallet.sv is None:
        return None
    return wallet.sv.balance


def _served_by_recovery(decision: MealDecision, recovered: Sequence[JournalRecord]) -> bool:
    """Whether this tap recovered, as committed, the session that paid the meal in the log.

    That session's close answer was lost at an earlier tap, which therefore did not serve: the
    pupil is served now, without a new charge. A Cursus session serves only a meal without a
    wallet part (otherwise the wallet session is the one that serves).
    """
    meal = decision.previous
    if meal is None:
        return False
    for record in recovered:
        written = record.intent.written_event
        if record.state is not TransactionState.COMMITTED or written is None:
            continue
        if record.intent.application == CURSUS:
            if CanteenLogEntry.from_record(written) == meal and meal.wallet_amount == 0:
                return True
        elif record.intent.application == WALLET:
            debit = WalletDebit.from_record(written)
            if debit is not None and wallet_debit_matches(meal, debit):
                return True
    return False
