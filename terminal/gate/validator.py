"""The gate validator: card in the field -> decision -> write -> close -> journal -> barrier.

One :meth:`GateValidator.on_card` per tap (docs/gate.md has the sequence with APDU counts):

1. Selection of PLUM with the environment, the event log, the contract list and the contracts
   read in the same exchange.
2. A first decision on PLUM alone tells whether an entitlement of another application could change
   the outcome (free before paid: a pass or a transfer wins, and deny-list, invalidation,
   environment and anti-passback refusals come first). Only then are Cursus (school transport)
   and Mes droits pour l'emploi (mobility aid) read, outside any session (free reads), and PLUM
   selected again.
3. Open Secure Session on PLUM with the debit key, reading the counters record: the card's
   transaction counter and ratification flag come with it. ``journal.resolve`` decides any
   earlier session of this card left uncertain, *before* deciding this tap: a session that the
   card committed is never charged again, and if its barrier never opened it opens now.
4. The decision (pure, :func:`terminal.fares.decide`), without the network.
5. Writes (event appended, counter decreased) with anticipated responses, ``journal.begin`` right
   before Close Secure Session, the close (ratification deferred), ``journal.commit`` with the
   SAM's traceable signature, the ratification command, then the barrier.

Failures: a card pulled away before the close leaves nothing on the card (anti-tearing): nothing
journaled, "Veuillez représenter votre carte". A close whose answer is lost is journaled
UNCERTAIN; the card's next tap resolves it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from card_schema.crypto import KeyRole
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from card_schema.uploads.signing import intent_sam_input
from firmware_host.osdp.errors import PeripheralError
from firmware_host.osdp.gate import GatePeripheral
from firmware_host.readers.base import Reader
from terminal.cardimage import encode_event, fare_card_image
from terminal.engine import (
    APDUCounter,
    CalypsoCard,
    CardSelection,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMResource,
    SelectionError,
    select_card,
)
from terminal.engine.errors import CardAuthenticationError
from terminal.engine.status import CardCommand
from terminal.fares import DISPLAY_TEXT, Decision, Reason, decide, inspect
from terminal.fares.model import GateKind, Place, Tap
from terminal.fares.signed import PushedTables
from terminal.journal import Journal
from terminal.journal.errors import JournalError

log = logging.getLogger(__name__)

DISPLAY_PRESENT_AGAIN = "Veuillez représenter votre carte"
DISPLAY_UNKNOWN_CARD = "Carte non reconnue"
DISPLAY_OUT_OF_SERVICE = "Hors service"
DISPLAY_NOT_PAYABLE_HERE = "Paiement impossible ici"
PASSAGE_TIMEOUT_S = 8.0

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


@dataclass
class _Tap:
    """State of the tap in progress (for error handling)."""

    counter: APDUCounter
    now: datetime
    seq: int | None = None
    resolved: tuple[JournalRecord, ...] = ()
    decision: Decision | None = None
    extra: dict[str, object] = field(default_factory=dict)


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
        ratify_now: close with immediate ratification instead of a ratification command (the
            default follows Keyple: deferred, then the ratification command).
        passage_timeout: seconds the barrier waits for the passage.
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
        ratify_now: bool = False,
        passage_timeout: float = PASSAGE_TIMEOUT_S,
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
            return self._communication_failure(tap, exc)
        except CardAuthenticationError as exc:
            log.error("card signature not verified after close: %s", exc)
            if tap.seq is not None:
                self.journal.mark_uncertain(tap.seq)
            return self._finish(tap, TapOutcome.UNCERTAIN, False, DISPLAY_PRESENT_AGAIN)
        except (EngineError, JournalError) as exc:
            log.warning("session not committed: %s", exc)
            if tap.seq is not None:
                self.journal.abort(tap.seq, str(exc)[:200])
            return self._finish(tap, TapOutcome.ABORTED, False, DISPLAY_PRESENT_AGAIN)
        finally:
            self.reader.disconnect()

    def _communication_failure(self, tap: _Tap, exc: CommunicationError) -> TapResult:
        if tap.seq is not None:
            if exc.command is CardCommand.CLOSE_SECURE_SESSION and exc.may_have_reached_card:
                log.warning("close answer lost, session uncertain (seq %d): %s", tap.seq, exc)
                self.journal.mark_uncertain(tap.seq)
                return self._finish(tap, TapOutcome.UNCERTAIN, False, DISPLAY_PRESENT_AGAIN)
            self.journal.abort(tap.seq, f"communication: {exc}"[:200])
        log.info("card left the field: %s", exc)
        return self._finish(tap, TapOutcome.ABORTED, False, DISPLAY_PRESENT_AGAIN)

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

    def _on_card(self, tap: _Tap) -> TapResult:
        self._step("select")
        card = CalypsoCard(atr=self.reader.connect())
        manager = CardTransactionManager(self.reader, card, self.sam, counter=tap.counter)
        if self.kind is not GateKind.BIKE_SHELTER:
            # Free school transport (Cursus) comes before a carnet or the wallet: read it first,
            # outside any session, so that PLUM stays selected for the session (no re-select).
            manager.process_select_application("cursus", reads=("student",))
        select_card(self.reader, PLUM_SELECTION, counter=tap.counter, card=card)
        tariff = self.tables.tariff_at(tap.now)
        if self.kind is GateKind.INSPECTOR:
            return self._inspect(tap, card, manager)
        fare_tap = Tap(when=tap.now, place=self.place, gate=self.kind)
        if self.kind is GateKind.BIKE_SHELTER:
            shelter = decide(fare_card_image(card, tariff), fare_tap, tariff, self.tables.deny_list)
            tap.decision = shelter
            outcome = TapOutcome.NO_WRITE if shelter.accepted else TapOutcome.REFUSED
            return self._finish(tap, outcome, shelter.accepted, shelter.display)
        self._step("open_session")
        opening = manager.process_opening(KeyRole.DEBIT, read=("counters", 1))
        plum = card.application("plum")
        events = _event_log(plum.file_records("events"))
        self._step("resolve")
        tap.resolved = tuple(self.journal.resolve(card.serial, opening.transaction_counter, events))
        recovered = [
            r
            for r in tap.resolved
            if r.state is TransactionState.COMMITTED and r.intent.written_event in events
        ]
        if recovered:
            # A session of this card committed without its barrier opening (close answer lost,
            # or the terminal died after the close): open now, charge nothing.
            manager.process_cancel()
            log.info("recovered session %d: no new charge", recovered[-1].seq)
            return self._finish(tap, TapOutcome.RECOVERED, True, DISPLAY_TEXT[Reason.OK])
        self._step("decide")
        image = fare_card_image(card, tariff)
        decision = decide(image, fare_tap, tariff, self.tables.deny_list)
        if decision.sv_debit or decision.entitlement_debit is not None:
            # Wallet and mobility-aid debits need a session in another application, which this
            # gate does not run yet: decide again with what PLUM alone can pay (carnet, pass).
            decision = decide(
                replace(image, sv_balance=None, mobility_aid=None),
                fare_tap,
                tariff,
                self.tables.deny_list,
            )
        tap.decision = decision
        if not decision.accepted or not decision.writes:
            manager.process_cancel()
            outcome = TapOutcome.REFUSED if not decision.accepted else TapOutcome.NO_WRITE
            return self._finish(tap, outcome, decision.accepted, decision.display)
        if decision.sv_debit or decision.entitlement_debit is not None or decision.event is None:
            # SV and aid debits live in other applications (another session): not at this gate yet.
            manager.process_cancel()
            return self._finish(tap, TapOutcome.REFUSED, False, DISPLAY_NOT_PAYABLE_HERE)
        if not self.peripheral.online:
            manager.process_cancel()
            return self._finish(tap, TapOutcome.OUT_OF_SERVICE, False, DISPLAY_OUT_OF_SERVICE)
        intent = self._prepare_writes(manager, card, decision, tap, opening.transaction_counter)

        signature: list[bytes] = []

        def begin_and_sign() -> None:
            self._step("journal_begin")
            tap.seq = self.journal.begin(intent)
            self._step("sign")
            payload = intent_sam_input(self.journal.terminal_id, tap.seq, intent)
            signature.append(self.sam.compute_signature(payload).to_bytes())
            self._step("close")

        manager.process_closing(ratify_now=self.ratify_now, before_close=begin_and_sign)
        assert tap.seq is not None
        self._step("closed")
        self.journal.commit(tap.seq, signature[0])
        self._step("committed")
        if not self.ratify_now:
            self._step("ratify")
            try:
                manager.process_ratification()
            except CommunicationError as exc:  # committed anyway; the flag stays "not ratified"
                log.info("ratification not delivered: %s", exc)
        return self._finish(tap, TapOutcome.COMMITTED, True, decision.display)

    def _prepare_writes(
        self,
        manager: CardTransactionManager,
        card: CalypsoCard,
        decision: Decision,
        tap: _Tap,
        tx_counter: int,
    ) -> TransactionIntent:
        tariff = self.tables.tariff_at(tap.now)
        assert decision.event is not None
        plum = card.application("plum")
        last_events = tuple(_event_log(plum.file_records("events")))
        event = encode_event(decision.event, tariff, self.place.mode)
        movements: list[PurseMovement] = []
        kind = TransactionKind.VALIDATION
        if decision.counter_debit is not None:
            slot, trips = decision.counter_debit.counter_slot, decision.counter_debit.trips
            before = plum.counter("counters", slot) or 0
            manager.prepare_decrease("counters", slot, trips)
            movements.append(
                PurseMovement(
                    f"plum.counter.{slot}", PurseUnit.COUNT, -trips, before, before - trips
                )
            )
            kind = TransactionKind.COUNTER_DECREASE
        manager.prepare_append_record("events", event)
        product = tariff.product(decision.product_id)
        return TransactionIntent(
            kind=kind,
            application="plum",
            card_serial=card.serial,
            card_tx_counter=tx_counter,
            occurred_at=tap.now if tap.now.tzinfo else tap.now.replace(tzinfo=UTC),
            movements=tuple(movements),
            product_code=product.card_code if product is not None else None,
            station_id=self.place.station_id,
            last_events=last_events,
            written_event=event,
        )

    # -- inspector ----------------------------------------------------------------------------
    def _inspect(self, tap: _Tap, card: CalypsoCard, manager: CardTransactionManager) -> TapResult:
        """Read everything, explain, never open a session and never write."""
        manager.prepare_read_records("counters")
        manager.process_commands()
        manager.process_select_application("employment", reads=("rights",))
        if manager.process_select_application("wallet") is not None:
            manager.prepare_sv_get()
            manager.process_commands()
        tariff = self.tables.tariff_at(tap.now)
        report = inspect(
            fare_card_image(card, tariff),
            tap.now,
            tariff,
            self.place,
            deny_list=self.tables.deny_list,
        )
        display = "Titre valide" if report.has_valid_contract else "Aucun titre valide"
        return self._finish(tap, TapOutcome.INSPECTED, False, display, report=report)
