"""The gate validator: card in the field -> decision -> write -> close -> journal -> barrier.

One :meth:`GateValidator.on_card` per tap (docs/gate.md has the sequence with APDU counts):

1. Selection of PLUM with the environment, the event log, the contract list and the contracts
   read in the same exchange; Open Secure Session on PLUM (debit key) reading the counters: the
   card's transaction counter and ratification flag come with it.
2. ``journal.resolve`` decides any earlier session of this card left uncertain, *before*
   deciding this tap. A validation of this card that committed without its barrier opening
   (close answer lost, or the gate died between the commit and the barrier: the gate's
   :class:`~terminal.gate.barrier.BarrierLog`) opens the barrier now, without a new charge.
3. A first decision on PLUM alone (:func:`terminal.fares.decide`, pure, without the network).
   Only when PLUM gives no right for this tap (a refusal such as "no valid contract", "expired",
   "out of zone"), or gives a paid trip to a holder whose profile may carry a free entitlement,
   are Cursus (school transport), Mes droits pour l'emploi (mobility aid) and the wallet read,
   outside any session (the PLUM session is abandoned: the Select drops it on the card), then
   PLUM selected and opened again. A pay-as-you-go event this decision relies on (a transfer,
   "Déjà validé") is trusted only when its SV debit is in the wallet's debit log.
4. The PLUM session: event appended (and carnet counter decreased) with anticipated responses,
   ``journal.begin`` right before Close Secure Session, the close (ratification deferred),
   ``journal.commit`` with the SAM's traceable signature.
5. Pay-as-you-go: a second session, in the wallet (SV Get, SV Debit), journaled on its own.
6. The ratification command, then the barrier, then the barrier log.

Failures: a card pulled away before a close leaves nothing of that session on the card
(anti-tearing): "Veuillez représenter votre carte". A close whose answer is lost is journaled
UNCERTAIN; the card's next tap resolves it. A pay-as-you-go ride whose wallet session failed is
on the card unpaid: the barrier stays closed, and the next tap at this gate takes the payment and
opens; elsewhere the unpaid ride gives no right (no transfer from it).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from card_schema.crypto import KeyRole
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from firmware_host.osdp.errors import PeripheralError
from firmware_host.osdp.gate import GatePeripheral
from firmware_host.readers.base import Reader
from terminal.actions.plum import PlumLoad
from terminal.actions.writer import ActionWriter
from terminal.cardimage import decode_event, encode_event, fare_card_image, local_naive
from terminal.engine import (
    APDUCounter,
    ApplicationImage,
    CalypsoCard,
    CardSelection,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMError,
    SAMResource,
    SelectionError,
    SessionOpening,
    sam_unreachable,
    select_card,
)
from terminal.engine.journaled import SessionOutcome, run_journaled_session
from terminal.engine.svlog import WalletDebit, non_blank, sv_debit_intent
from terminal.fares import DISPLAY_TEXT, Decision, Reason, Tariff, decide, inspect
from terminal.fares.local_time import to_local
from terminal.fares.model import CardImage, Event, GateKind, Place, ProfileCode, Tap
from terminal.fares.reasons import format_euros
from terminal.fares.rules import trip_fare
from terminal.fares.signed import PushedTables
from terminal.fares.tariff import ProductKind
from terminal.gate.barrier import BarrierLog
from terminal.journal import Journal
from terminal.journal.errors import JournalError

log = logging.getLogger(__name__)

DISPLAY_PRESENT_AGAIN = "Veuillez représenter votre carte"
DISPLAY_UNKNOWN_CARD = "Carte non reconnue"
DISPLAY_OUT_OF_SERVICE = "Hors service"
DISPLAY_NOT_PAYABLE_HERE = "Paiement impossible ici"
PASSAGE_TIMEOUT_S = 8.0


# SAM refusals caused by the card in front of it, not by the SAM: another card may pass.
CARD_CAUSED_SAM_WORDS = frozenset(
    {
        0x6988,  # the card's signature (or SV signature) is wrong
        0x6A80,  # SV prepare: the card's balance makes the operation impossible
    }
)


def sam_refusal(exc: BaseException | None) -> SAMError | None:
    """The SAM's refusal that caused ``exc`` (following causes and contexts), if it means the
    SAM cannot serve any card (a key it lacks, ``6A83`` at Digest Init; a counter exhausted...)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SAMError):
            return None if exc.sw in CARD_CAUSED_SAM_WORDS else exc
        exc = exc.__cause__ or exc.__context__
    return None


def display_sam_fault(refusal: SAMError) -> str:
    """What the gate shows when its SAM refuses to serve: out of service, and why."""
    return f"{DISPLAY_OUT_OF_SERVICE} : SAM en défaut ({refusal.sw:04X})"


# A PLUM-only refusal of these kinds may be lifted by another application (lazy reads).
NO_RIGHT_REASONS = frozenset(
    {
        Reason.NO_VALID_CONTRACT,
        Reason.CONTRACT_EXPIRED,
        Reason.CONTRACT_NOT_YET_VALID,
        Reason.OUT_OF_ZONE,
        Reason.NOT_VALID_HERE,
        Reason.PROFILE_EXPIRED,
        Reason.CARNET_EMPTY,
        Reason.INSUFFICIENT_BALANCE,
    }
)
# Read in this order (the fares decision order: school transport, mobility aid, wallet).
OTHER_APPLICATIONS = ("cursus", "employment", "wallet")
SV_LOG_READ = "wallet.sv_debit_log"  # in _Tap.read once the SV debit log was read
APPLICATION_READS = {"cursus": ("student",), "employment": ("rights",)}
# Holder profiles (PLUM environment) that may come with a free entitlement elsewhere.
PROFILE_HINTS = ((ProfileCode.STUDENT, "cursus"), (ProfileCode.JOB_SEEKER, "employment"))

PLUM_READS = ("environment", "events", "contract_list", "contracts")
PLUM_SELECTION = (
    CardSelection("plum", reads=PLUM_READS),
    CardSelection("plum", df_name=b"3MTR.ICA", reads=PLUM_READS),  # Lille-network DF name
)


class TapOutcome(enum.Enum):
    """What happened to the card at one tap."""

    COMMITTED = "committed"  # session closed and verified, journaled COMMITTED
    RECOVERED = "recovered"  # an earlier uncertain session was found on the card: no new charge
    REFUSED = "refused"  # decision refused, nothing written
    NO_WRITE = "no_write"  # accepted without writing (bike-shelter door)
    INSPECTED = "inspected"  # inspector: read and explained, nothing written
    UNCERTAIN = "uncertain"  # close answer lost: journaled UNCERTAIN, the next tap decides
    ABORTED = "aborted"  # the card refused or left before committing: nothing on the card
    UNKNOWN_CARD = "unknown_card"  # not a regional card, or unreadable
    OUT_OF_SERVICE = "out_of_service"  # barrier offline: refused before any write


@dataclass(frozen=True)
class TapResult:
    """The result of one tap.

    Attributes:
        outcome: what happened.
        accepted: the passenger may go through (barrier opened).
        display: the French line shown.
        decision: the fare decision, when one was made.
        journal_seq: the journal record of this tap's session, if any.
        resolved: earlier uncertain records of this card decided at this tap.
        card_apdus: card APDUs sent during the tap.
        sam_apdus: SAM APDUs sent during the tap.
        report: the inspector's report (inspector mode).
    """

    outcome: TapOutcome
    accepted: bool
    display: str
    decision: Decision | None = None
    journal_seq: int | None = None
    resolved: tuple[JournalRecord, ...] = ()
    card_apdus: int = 0
    sam_apdus: int = 0
    report: object | None = None


def _event_log(records: list[bytes]) -> list[bytes]:
    """The event log as evidence for the journal: newest first, unused (all-zero) records left
    out, so that an empty log never offers two readings (``terminal/journal/recovery.py``)."""
    return [r for r in records if any(r)]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class _Tap:
    """State of the tap in progress (for error handling)."""

    counter: APDUCounter
    now: datetime
    seq: int | None = None
    resolved: tuple[JournalRecord, ...] = ()
    decision: Decision | None = None
    barrier_rows: list[int] = field(default_factory=list)
    read: set[str] = field(default_factory=set)
    excluded: Event | None = None  # an unpaid pay-as-you-go ride: no right comes from it


@dataclass
class _Card:
    """What this tap knows of the card, and the objects driving it."""

    card: CalypsoCard
    manager: CardTransactionManager
    tariff: Tariff
    fare_tap: Tap
    opening: SessionOpening | None
    events: list[bytes]
    load: PlumLoad | None = None  # a pending action written in this tap's session
    role: KeyRole = KeyRole.DEBIT  # LOAD when a load is written (it grants the debit operations)

    @property
    def plum(self) -> ApplicationImage:
        return self.card.application("plum")


def read_rest_for_inspection(manager: CardTransactionManager) -> None:
    """After PLUM's selection: its counters, Cursus, employment rights and the wallet balance.

    Free reads only (Read Records, SV Get): what an inspector explains, never a session.
    """
    manager.prepare_read_records("counters")
    manager.process_commands()
    manager.process_select_application("cursus", reads=("student",))
    manager.process_select_application("employment", reads=("rights",))
    if manager.process_select_application("wallet") is not None:
        manager.prepare_sv_get()
        manager.process_commands()


class GateValidator:
    """One validator: a card reader, a SAM, the journal, the pushed tables and the barrier.

    Args:
        reader: the card reader (contactless field).
        sam_reader: the SAM reader.
        journal: the offline journal, opened as owner.
        tables: tariff table and deny-list in force (signed, pushed by the backend).
        peripheral: barrier, lights and display.
        place: where the gate stands (station id, zone, network, mode, line).
        clock: the terminal's clock, timezone-aware.
        kind: validator, bike-shelter door or inspector's reader.
        ratify_now: close with immediate ratification (P1 ``80``, the default: Keyple's when
            its ratification mechanism is off; 9 card APDUs for a carnet trip) or, with
            ``False``, close P1 ``00`` then the ratification command (one APDU more). Recovery
            of a torn session never depends on the ratification flag: it reads the journal, the
            transaction counter and the card's logs.
        passage_timeout: seconds the barrier waits for the passage.
        barrier_log: where the barrier outcome of each validation is kept (a file next to the
            journal in production: ``regioncard gate`` uses ``<journal>.barrier``); in memory by
            default.
        actions: pending loads of the action list in force, written in the validation's session
            (docs/action-lists.md); none written without it.
    """

    def __init__(
        self,
        reader: Reader,
        sam_reader: Reader,
        journal: Journal,
        tables: PushedTables,
        peripheral: GatePeripheral,
        place: Place,
        *,
        clock: Callable[[], datetime] = _utc_now,
        kind: GateKind = GateKind.GATE,
        ratify_now: bool = True,
        passage_timeout: float = PASSAGE_TIMEOUT_S,
        barrier_log: BarrierLog | None = None,
        actions: ActionWriter | None = None,
    ) -> None:
        self.reader = reader
        self.counter = APDUCounter()
        self.sam = SAMResource(sam_reader, self.counter)
        self.journal = journal
        self.tables = tables
        self.peripheral = peripheral
        self.place = place
        self.clock = clock
        self.kind = kind
        self.ratify_now = ratify_now
        self.passage_timeout = passage_timeout
        self.barrier_log = barrier_log if barrier_log is not None else BarrierLog()
        self.actions = actions
        self.step_hook: Callable[[str], None] | None = None
        """Called with a step name at each step of a validation (tests kill the process here)."""

    def _step(self, name: str) -> None:
        log.debug("gate step %s", name)
        if self.step_hook is not None:
            self.step_hook(name)

    # -- the tap ------------------------------------------------------------------------------
    def on_card(self) -> TapResult:
        """Process the card now in the field, from selection to barrier. Never raises for a
        card or reader problem: the result says what happened and what the display showed.
        """
        self.counter.reset()
        tap = _Tap(self.counter, self.clock())
        try:
            return self._on_card(tap)
        except SelectionError as exc:
            log.info("card not accepted: %s", exc)
            return self._finish(tap, TapOutcome.UNKNOWN_CARD, False, DISPLAY_UNKNOWN_CARD)
        except CommunicationError as exc:
            if sam_unreachable(exc):
                log.error("SAM unreachable: %s", exc)
                return self._finish(tap, TapOutcome.ABORTED, False, DISPLAY_OUT_OF_SERVICE)
            log.info("card left the field: %s", exc)
            return self._finish(tap, TapOutcome.ABORTED, False, DISPLAY_PRESENT_AGAIN)
        except (EngineError, JournalError) as exc:
            refusal = sam_refusal(exc)
            if refusal is not None:
                # The SAM cannot serve (a key it lacks, 6A83...): every card would fail the
                # same way. Say so, instead of asking each passenger to present again.
                log.warning("SAM cannot serve, gate out of service: %s", refusal)
                return self._finish(tap, TapOutcome.ABORTED, False, display_sam_fault(refusal))
            # A journal failure after begin leaves the record PENDING: the next Journal.open
            # makes it UNCERTAIN and the card's next tap decides it.
            log.warning("tap not completed: %s", exc)
            return self._finish(tap, TapOutcome.ABORTED, False, DISPLAY_PRESENT_AGAIN)
        finally:
            self.reader.disconnect()

    def _finish(
        self,
        tap: _Tap,
        outcome: TapOutcome,
        accepted: bool,
        display: str,
        *,
        report: object | None = None,
    ) -> TapResult:
        result = TapResult(
            outcome=outcome,
            accepted=accepted,
            display=display,
            decision=tap.decision,
            journal_seq=tap.seq,
            resolved=tap.resolved,
            card_apdus=tap.counter.card,
            sam_apdus=tap.counter.sam,
            report=report,
        )
        self._step("barrier")
        try:
            if accepted:
                self.peripheral.signal_valid(display)
                for row in tap.barrier_rows:  # the barrier was told to open: never again
                    self.barrier_log.opened(row)
                self.peripheral.wait_passage(self.passage_timeout)
            else:
                self.peripheral.signal_refused(display)
        except PeripheralError as exc:
            log.error("gate peripheral: %s", exc)
        log.info(
            "tap %s: %s (%d card APDUs, %d SAM APDUs)",
            outcome.value,
            display,
            result.card_apdus,
            result.sam_apdus,
        )
        return result

    def _session_failed(self, tap: _Tap, outcome: SessionOutcome) -> TapResult:
        """A session that did not commit (as far as the gate knows): present the card again,
        or out of service when the SAM's reader failed (presenting again would not help)."""
        if outcome.record is not None:
            tap.seq = outcome.record.seq
        state = TapOutcome.UNCERTAIN if outcome.status == SessionOutcome.UNCERTAIN else None
        if sam_unreachable(outcome.cause):
            log.error("SAM unreachable, session not committed: %s", outcome)
            return self._finish(tap, state or TapOutcome.ABORTED, False, DISPLAY_OUT_OF_SERVICE)
        refusal = sam_refusal(outcome.cause)
        if refusal is not None:
            log.warning("SAM cannot serve, session not committed: %s", refusal)
            display = display_sam_fault(refusal)
            return self._finish(tap, state or TapOutcome.ABORTED, False, display)
        log.info("session not committed: %s", outcome)
        return self._finish(tap, state or TapOutcome.ABORTED, False, DISPLAY_PRESENT_AGAIN)

    def _on_card(self, tap: _Tap) -> TapResult:
        self._step("select")
        card = CalypsoCard(atr=self.reader.connect())
        manager = CardTransactionManager(self.reader, card, self.sam, counter=tap.counter)
        select_card(self.reader, PLUM_SELECTION, counter=tap.counter, card=card)
        tap.read.add("plum")
        tariff = self.tables.tariff_at(tap.now)
        if self.kind is GateKind.INSPECTOR:
            return self._inspect(tap, card, manager, tariff)
        fare_tap = Tap(when=tap.now, place=self.place, gate=self.kind)
        if self.kind is GateKind.BIKE_SHELTER:
            shelter = decide(fare_card_image(card, tariff), fare_tap, tariff, self.tables.deny_list)
            tap.decision = shelter
            outcome = TapOutcome.NO_WRITE if shelter.accepted else TapOutcome.REFUSED
            return self._finish(tap, outcome, shelter.accepted, shelter.display)
        load = None
        if self.actions is not None:
            load = self.actions.plan_plum(card, to_local(tap.now).date())
        role = KeyRole.LOAD if load is not None else KeyRole.DEBIT
        self._step("open_session")
        opening = manager.process_opening(role, read=("counters", 1))
        events = _event_log(card.application("plum").file_records("events"))
        ctx = _Card(card, manager, tariff, fare_tap, opening, events, load, role)
        self._step("resolve")
        tap.resolved = tuple(self.journal.resolve(card.serial, opening.transaction_counter, events))
        if self.actions is not None:
            self.actions.settle(self.journal, bool(tap.resolved))
            if load is not None:
                self.actions.apply(ctx.plum, load)
        waiting = self._barrier_never_opened(tap, ctx)
        if waiting is not None:
            return self._open_again(tap, ctx, waiting)
        self._step("decide")
        decision = self._decide(tap, ctx)
        if isinstance(decision, TapResult):
            return decision
        if decision.entitlement_debit is not None:
            # Mobility aid: an entitlement, not a purse (docs/gate.md): the gate holds no key
            # that may write the employment rights file; the event names the aid's product only.
            decision = replace(decision, entitlement_debit=None)
        tap.decision = decision
        if not decision.accepted or not decision.writes:
            manager.process_cancel()
            outcome = TapOutcome.REFUSED if not decision.accepted else TapOutcome.NO_WRITE
            return self._finish(tap, outcome, decision.accepted, decision.display)
        if decision.event is None:
            manager.process_cancel()
            return self._finish(tap, TapOutcome.REFUSED, False, DISPLAY_NOT_PAYABLE_HERE)
        if not self.peripheral.online:
            manager.process_cancel()
            return self._finish(tap, TapOutcome.OUT_OF_SERVICE, False, DISPLAY_OUT_OF_SERVICE)
        return self._validate(tap, ctx, decision)

    # -- deciding -----------------------------------------------------------------------------
    def _image(self, tap: _Tap, ctx: _Card) -> CardImage:
        image = fare_card_image(ctx.card, ctx.tariff)
        if tap.excluded is not None:
            image = replace(image, events=tuple(e for e in image.events if e != tap.excluded))
        return image

    def _decide_now(self, tap: _Tap, ctx: _Card) -> Decision:
        return decide(self._image(tap, ctx), ctx.fare_tap, ctx.tariff, self.tables.deny_list)

    def _decide(self, tap: _Tap, ctx: _Card) -> Decision | TapResult:
        """PLUM first; the other applications only when PLUM gives no right (docs/gate.md)."""
        decision = self._decide_now(tap, ctx)
        newest = self._newest_event(ctx)
        if newest is not None and self._relies_on(decision, newest, ctx):
            paid = self._payment_state(tap, ctx, newest)
            if paid is False and decision.reason is Reason.ALREADY_VALIDATED:
                # The ride of the previous tap here is on the card, its payment is not: the
                # passenger is still in front of this gate. Take the payment, open.
                return self._complete_payment(tap, ctx, newest, [])
            if paid is False:
                log.info("unpaid pay-as-you-go ride of %s: no right from it", newest.when)
                tap.excluded = newest
                decision = self._decide_now(tap, ctx)
        to_read = self._other_applications(decision, tap, ctx)
        for name in to_read:
            self._read_application(tap, ctx, name)
            decision = self._decide_now(tap, ctx)
            if decision.accepted and not (decision.counter_debit or decision.sv_debit):
                break  # free (school transport, mobility aid): nothing more to read
        return decision

    def _other_applications(self, decision: Decision, tap: _Tap, ctx: _Card) -> list[str]:
        """The applications still to read before this decision can stand (lazy reads)."""
        if not decision.accepted and decision.reason in NO_RIGHT_REASONS:
            wanted = list(OTHER_APPLICATIONS)
        elif decision.accepted and decision.counter_debit is not None:
            # Free before paid (docs/tariffs.md): a carnet trip waits for the entitlement the
            # holder's profile says they may have.
            today = to_local(ctx.fare_tap.when).date()
            profiles = {p.code for p in self._image(tap, ctx).profiles if p.is_valid_on(today)}
            wanted = [app for code, app in PROFILE_HINTS if code in profiles]
        else:
            wanted = []
        return [name for name in wanted if name not in tap.read]

    def _read_application(self, tap: _Tap, ctx: _Card, name: str, *, sv_log: bool = False) -> None:
        """Read another application outside any session (the PLUM session is dropped).

        The wallet: SV Get (balance), and with ``sv_log`` its SV debit log too (the evidence of
        pay-as-you-go payments and of this card's uncertain wallet sessions).
        """
        ctx.manager.abandon_session()
        ctx.opening = None
        tap.read.add(name)
        if name == "wallet":
            reads = ("sv_debit_log",) if sv_log else ()
            wallet = ctx.manager.process_select_application("wallet", reads=reads)
            if wallet is None:
                return
            ctx.manager.prepare_sv_get()
            ctx.manager.process_commands()
            if sv_log:
                tap.read.add(SV_LOG_READ)
                self._resolve_wallet(tap, ctx, wallet)
        else:
            ctx.manager.process_select_application(name, reads=APPLICATION_READS[name])

    def _resolve_wallet(self, tap: _Tap, ctx: _Card, wallet: ApplicationImage) -> None:
        """Decide this card's uncertain wallet sessions from the SV debit log just read."""
        counter = ctx.card.transaction_counter
        assert counter is not None
        sv_log = non_blank(wallet.file_records("sv_debit_log"))
        tap.resolved += tuple(self.journal.resolve(ctx.card.serial, counter, sv_log))

    def _reopen_plum(self, ctx: _Card) -> SessionOpening:
        """PLUM selected again (records already read) and a new session opened, if needed."""
        if ctx.opening is None:
            plum = ctx.plum
            ctx.manager.process_select_application("plum", df_name=plum.df_name)
            ctx.opening = ctx.manager.process_opening(ctx.role, read=("counters", 1))
            if ctx.load is not None:  # the opening read the counter record again
                ActionWriter.apply(ctx.card.application("plum"), ctx.load)
        return ctx.opening

    # -- pay-as-you-go evidence -----------------------------------------------------------------
    def _newest_event(self, ctx: _Card) -> Event | None:
        return decode_event(ctx.events[0], ctx.tariff) if ctx.events else None

    def _is_payg(self, event: Event, tariff: Tariff) -> bool:
        product = tariff.product(event.product_id)
        return product is not None and product.kind is ProductKind.PAY_AS_YOU_GO

    def _relies_on(self, decision: Decision, newest: Event, ctx: _Card) -> bool:
        """Whether ``decision`` stands on the newest event, a pay-as-you-go ride."""
        if not self._is_payg(newest, ctx.tariff):
            return False
        if decision.reason is Reason.TRANSFER:
            return decision.contract_slot is None and decision.product_id == newest.product_id
        return decision.reason is Reason.ALREADY_VALIDATED

    def _payment_state(self, tap: _Tap, ctx: _Card, ride: Event) -> bool | None:
        """``True`` if the wallet's debit log holds the ride's SV debit, ``False`` if it shows
        none since the ride, ``None`` if the log cannot tell (three newer debits): then the
        ride counts as paid, never charged twice (the journal has the evidence)."""
        if SV_LOG_READ not in tap.read:
            self._read_application(tap, ctx, "wallet", sv_log=True)
        wallet = ctx.card.applications.get("wallet")
        if wallet is None:
            return None
        raw = wallet.file_records("sv_debit_log")
        debits = [d for d in (WalletDebit.from_record(r) for r in raw) if d is not None]
        when = local_naive(ride.when).replace(second=0, microsecond=0)
        # The ride's debit carries the ride's own date and time (to the minute). Calypso's
        # debit log names the terminal by its SAM, not by station, and the ride may have been
        # at another gate (another SAM) than this tap: time and sign are what identify it.
        if any(d.at == when and d.amount > 0 for d in debits):
            return True
        if len(debits) >= len(raw) and debits and min(d.at for d in debits) >= when:
            return None
        return False

    # -- opening again without charging -----------------------------------------------------
    def _barrier_never_opened(self, tap: _Tap, ctx: _Card) -> bytes | None:
        """The newest PLUM event of a validation of this card whose barrier never opened.

        Either the journal just recovered the session as committed (its close answer was lost),
        or the barrier log has it pending (the gate died between the commit and the barrier)
        and the tap is within the anti-passback window of that validation.
        """
        recovered = [
            r
            for r in tap.resolved
            if r.state is TransactionState.COMMITTED
            and r.intent.application == "plum"
            and r.intent.written_event in ctx.events
        ]
        window = timedelta(seconds=ctx.tariff.anti_passback_seconds)
        pending = [
            p
            for p in self.barrier_log.pending(ctx.card.serial)
            if ctx.events and p.event == ctx.events[0] and timedelta(0) <= tap.now - p.at < window
        ]
        tap.barrier_rows = [p.row for p in pending]
        if pending:
            return pending[0].event
        if recovered:
            event = recovered[-1].intent.written_event
            assert event is not None
            return event
        return None

    def _open_again(self, tap: _Tap, ctx: _Card, written: bytes) -> TapResult:
        """Open for a validation already on the card: charge nothing (or only a missing
        pay-as-you-go payment of that very ride)."""
        ride = decode_event(written, ctx.tariff)
        if ride is not None and self._is_payg(ride, ctx.tariff):
            paid = self._payment_state(tap, ctx, ride)
            if paid is False:
                return self._complete_payment(tap, ctx, ride, tap.barrier_rows)
        else:
            ctx.manager.process_cancel()
        log.info("validation already on the card, barrier never opened: no new charge")
        return self._finish(tap, TapOutcome.RECOVERED, True, DISPLAY_TEXT[Reason.OK])

    # -- writing ------------------------------------------------------------------------------
    def _validate(self, tap: _Tap, ctx: _Card, decision: Decision) -> TapResult:
        """The PLUM session (event, carnet trip), then the wallet session for pay-as-you-go."""
        manager = ctx.manager
        opening = self._reopen_plum(ctx)
        assert decision.event is not None
        event = encode_event(decision.event, ctx.tariff, self.place.mode)
        intent = self._plum_intent(ctx, decision, tap, event, opening.transaction_counter)

        def prepare(_: SessionOpening) -> None:
            debit = decision.counter_debit
            folded = False
            if ctx.load is not None:
                trip = None if debit is None else (debit.counter_slot, debit.trips)
                folded = ActionWriter.prepare(manager, ctx.plum, ctx.load, trip)
            if debit is not None and not folded:
                manager.prepare_decrease("counters", debit.counter_slot, debit.trips)
            manager.prepare_append_record("events", event)

        def expect_barrier(seq: int, _: TransactionIntent) -> None:
            tap.seq = seq
            if self.actions is not None and ctx.load is not None:
                self.actions.written(
                    seq, [ctx.load.action.action_id], ctx.card.serial, opening.transaction_counter
                )
            tap.barrier_rows = [self.barrier_log.expect(ctx.card.serial, event, tap.now, seq)]

        outcome = run_journaled_session(
            manager,
            self.sam,
            self.journal,
            prepare,
            lambda _: intent,
            ratify_now=self.ratify_now,
            opening=opening,
            step=self._step,
            after_begin=expect_barrier,
        )
        if self.actions is not None and ctx.load is not None:
            self.actions.ended(tap.seq, outcome)
        if not outcome.committed:
            return self._session_failed(tap, outcome)
        display = decision.display
        if decision.sv_debit:
            ride = replace(decision.event, when=tap.now)
            paid = self._wallet_session(tap, ctx, ride, decision.sv_debit)
            if not paid.committed:
                return self._session_failed(tap, paid)
        self._ratify(manager)
        return self._finish(tap, TapOutcome.COMMITTED, True, display)

    def _ratify(self, manager: CardTransactionManager) -> None:
        if self.ratify_now:
            return
        self._step("ratify")
        try:
            manager.process_ratification()
        except CommunicationError as exc:  # committed anyway; the flag stays "not ratified"
            log.info("ratification not delivered: %s", exc)

    def _complete_payment(self, tap: _Tap, ctx: _Card, ride: Event, rows: list[int]) -> TapResult:
        """Take the SV payment of a pay-as-you-go ride already on the card, then open."""
        image = self._image(tap, ctx)
        fare = trip_fare(image, self.place, to_local(ride.when).date(), ctx.tariff)
        if fare is None:
            ctx.manager.process_cancel()
            return self._finish(tap, TapOutcome.REFUSED, False, DISPLAY_NOT_PAYABLE_HERE)
        balance = image.sv_balance
        if balance is None or balance < fare[1]:
            ctx.manager.abandon_session()
            text = f"{Reason.INSUFFICIENT_BALANCE.text} — trajet {format_euros(fare[1])}"
            return self._finish(tap, TapOutcome.REFUSED, False, text)
        if not self.peripheral.online:
            return self._finish(tap, TapOutcome.OUT_OF_SERVICE, False, DISPLAY_OUT_OF_SERVICE)
        log.info("pay-as-you-go ride of %s unpaid: completing the payment", ride.when)
        tap.barrier_rows = rows
        paid = self._wallet_session(tap, ctx, ride, fare[1])
        if not paid.committed:
            return self._session_failed(tap, paid)
        self._ratify(ctx.manager)
        wallet = ctx.card.application("wallet")
        detail = "" if wallet.sv is None else f" — solde {format_euros(wallet.sv.balance)}"
        return self._finish(tap, TapOutcome.COMMITTED, True, DISPLAY_TEXT[Reason.OK] + detail)

    def _wallet_session(self, tap: _Tap, ctx: _Card, ride: Event, amount: int) -> SessionOutcome:
        """SV Debit of ``amount`` for ``ride``, dated and located like the ride's PLUM event so
        that the card's SV debit log names the ride it paid."""
        manager = ctx.manager
        at = local_naive(ride.when).replace(second=0, microsecond=0)
        self._step("wallet")
        try:
            if ctx.card.current == "wallet" and SV_LOG_READ in tap.read:
                wallet: ApplicationImage | None = ctx.card.application("wallet")
            else:
                # Any command after a close ratifies it: this Select ratifies the PLUM session.
                wallet = manager.process_select_application("wallet", reads=("sv_debit_log",))
                if wallet is not None and SV_LOG_READ not in tap.read:
                    tap.read.add(SV_LOG_READ)
                    self._resolve_wallet(tap, ctx, wallet)
        except CommunicationError as exc:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"reader: {exc}")
        except EngineError as exc:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, f"card: {exc}")
        if wallet is None or wallet.invalidated:
            return SessionOutcome(SessionOutcome.NOT_STARTED, None, "card: no usable wallet")
        sv_log = non_blank(wallet.file_records("sv_debit_log"))
        product = ctx.tariff.product(ride.product_id)

        def prepare(_: SessionOpening) -> None:
            manager.prepare_sv_debit(amount, at)

        def intent_of(opening: SessionOpening) -> TransactionIntent:
            sv = wallet.sv  # from this session's SV Get, sent before the close
            operation = manager.last_sv_operation  # SV Prepare gave the SAM's numbers
            assert sv is not None and operation is not None
            return sv_debit_intent(
                kind=TransactionKind.SV_DEBIT,
                card_serial=ctx.card.serial,
                card_tx_counter=opening.transaction_counter,
                kvc=operation.kvc,
                balance_before=sv.balance,
                sv_tnum_before=sv.tnum,
                amount=amount,
                at=at,
                sam_id=operation.sam_id,
                sam_tnum=operation.sam_tnum,
                occurred_at=_aware(tap.now),
                last_events=sv_log,
                product_code=product.card_code if product is not None else None,
                station_id=self.place.station_id,
            )

        def record_seq(seq: int, _: TransactionIntent) -> None:
            tap.seq = seq

        return run_journaled_session(
            manager,
            self.sam,
            self.journal,
            prepare,
            intent_of,
            ratify_now=self.ratify_now,
            step=lambda name: self._step(f"wallet_{name}"),
            after_begin=record_seq,
        )

    def _plum_intent(
        self,
        ctx: _Card,
        decision: Decision,
        tap: _Tap,
        event: bytes,
        tx_counter: int,
    ) -> TransactionIntent:
        """The PLUM session's journal intent: product code only, nothing of the holder."""
        movements: list[PurseMovement] = []
        kind = TransactionKind.VALIDATION
        if decision.counter_debit is not None:
            slot, trips = decision.counter_debit.counter_slot, decision.counter_debit.trips
            before = ctx.plum.counter("counters", slot) or 0
            movements.append(
                PurseMovement(
                    f"plum.counter.{slot}", PurseUnit.COUNT, -trips, before, before - trips
                )
            )
            kind = TransactionKind.COUNTER_DECREASE
        product = ctx.tariff.product(decision.product_id)
        return TransactionIntent(
            kind=kind,
            application="plum",
            card_serial=ctx.card.serial,
            card_tx_counter=tx_counter,
            occurred_at=_aware(tap.now),
            movements=tuple(movements),
            product_code=product.card_code if product is not None else None,
            station_id=self.place.station_id,
            last_events=tuple(ctx.events),
            written_event=event,
        )

    # -- inspector ----------------------------------------------------------------------------
    def _inspect(
        self, tap: _Tap, card: CalypsoCard, manager: CardTransactionManager, tariff: Tariff
    ) -> TapResult:
        """Read everything, explain, never open a session and never write."""
        read_rest_for_inspection(manager)
        report = inspect(
            fare_card_image(card, tariff),
            tap.now,
            tariff,
            self.place,
            deny_list=self.tables.deny_list,
        )
        display = "Titre valide" if report.has_valid_contract else "Aucun titre valide"
        return self._finish(tap, TapOutcome.INSPECTED, False, display, report=report)
