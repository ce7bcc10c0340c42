"""The partner shop's till: Cursus books and sport/leisure aid spent at a registered merchant.

A bookshop, a sports club or a leisure centre is registered with the purposes it may take
(``books``, ``sport``, ``leisure``). A sale debits **only** the aid counter of its purpose, in one
Cursus secure session (debit key): books from ``books_equipment`` (counter 1), sport and leisure
from ``sport_leisure`` (counter 2). The canteen counter (3) is never touched, and a purpose the
shop is not registered for is refused before anything is sent to the card (ring-fenced). What the
aid does not cover is paid outside the card (cash, bank card), or, if the holder agrees, from the
wallet by an SV Debit in a second (wallet) session, never without the aid part
(see ``docs/shop.md``).

A mistaken sale is refunded the same day at the same till by a reversing credit (Increase of the
same counter in a load-key session), capped at what this till sold to this card today minus what
it already refunded, from its own journal.

Each session is journaled around its close (:func:`terminal.engine.journaled.run_journaled_session`)
and uploaded like the canteen's. The card has no shop log: the session's witness is the aid
counters record itself (``written_event`` = the record after the session), as the desk does for
loads, so a lost close answer is decided at the next sale or refund of that card from its counter
and its transaction counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from card_schema.crypto import KeyRole
from card_schema.errors import SchemaError
from card_schema.layout import COUNTER_SIZE
from card_schema.uploads.records import (
    JournalRecord,
    PurseMovement,
    PurseUnit,
    TransactionIntent,
    TransactionKind,
    TransactionState,
)
from firmware_host.readers.base import Reader, ReaderError
from terminal.canteen.screen import Screen
from terminal.engine import (
    APDUCounter,
    CalypsoCard,
    CardTransactionManager,
    CommunicationError,
    EngineError,
    SAMResource,
    SessionOpening,
    sam_unreachable,
)
from terminal.engine.image import ApplicationImage
from terminal.engine.journaled import SessionOutcome, run_journaled_session
from terminal.engine.svlog import non_blank, sv_debit_intent
from terminal.fares.local_time import to_local
from terminal.journal.store import Journal

log = logging.getLogger(__name__)

CURSUS, WALLET = "cursus", "wallet"
AID_FILE = "aid_counters"
BLANK_RECORD = bytes(29)


@dataclass(frozen=True)
class Purpose:
    """An aid purpose a shop may take.

    Attributes:
        name: ``books``, ``sport`` or ``leisure``.
        counter: the Cursus aid counter that pays it (1..9).
        purse: the purse name in uploads (the ledger's ``aid.<purpose>`` comes from it).
        label: French label.
        product_code: the code written as the session's product.
    """

    name: str
    counter: int
    purse: str
    label: str
    product_code: int


PURPOSES: dict[str, Purpose] = {
    "books": Purpose("books", 1, "cursus.books_aid", "livres et matériel", 0x4B01),
    "sport": Purpose("sport", 2, "cursus.sport_aid", "sport", 0x4B02),
    "leisure": Purpose("leisure", 2, "cursus.sport_aid", "loisirs", 0x4B03),
}
PURPOSE_BY_CODE = {p.product_code: p for p in PURPOSES.values()}


class ShopReason:
    """French texts of a sale's or refund's outcome."""

    PAID = "Achat payé"
    RECOVERED = "Achat déjà payé lors du passage précédent : rien de plus n'est débité"
    REFUNDED = "Remboursement effectué"
    REFUND_RECOVERED = "Remboursement déjà effectué lors du passage précédent"
    NOT_REGISTERED = "Ce commerce n'est pas agréé pour cette aide"
    NO_AID = "Pas d'aide Cursus pour cet achat sur cette carte"
    WALLET_SHORT = "Porte-monnaie insuffisant pour le reste : rien n'est débité"
    PARTIAL = (
        "Aide débitée, porte-monnaie non débité : présenter la carte à nouveau "
        "ou régler le reste hors carte"
    )
    BAD_AMOUNT = "Montant invalide"
    REFUND_OVER_CAP = (
        "Remboursement refusé : au-delà de ce que cette caisse a vendu à cette carte aujourd'hui"
    )
    NO_CURSUS = "Pas d'application Cursus sur cette carte"
    INVALIDATED = "Application Cursus invalidée"
    TAP_AGAIN = "Opération non terminée : présenter la carte à nouveau"
    SAM_UNAVAILABLE = "Module de sécurité indisponible : opération impossible"
    CARD_ERROR = "Carte illisible ou refusée"


@dataclass
class ShopResult:
    """One sale or refund at the till.

    Attributes:
        reason: a :class:`ShopReason` text.
        purpose: the purpose asked.
        amount: the price (sale) or the amount to give back (refund), eurocents.
        aid_amount: what the card's aid counter paid (sale) or got back (refund).
        rest: what the customer pays outside the card (sale).
        wallet_amount: what the wallet paid (sale with the holder's agreement).
        aid_after: the counter after the operation, when known.
        outcome: the session, when one ran.
        recovered: the card's records decided at this tap.
        lines: what the screen shows (the receipt when paid).
        card_apdus: APDUs sent to the card.
    """

    reason: str
    purpose: str
    amount: int
    aid_amount: int = 0
    rest: int = 0
    wallet_amount: int = 0
    aid_after: int | None = None
    outcome: SessionOutcome | None = None
    recovered: list[JournalRecord] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    card_apdus: int = 0

    @property
    def done(self) -> bool:
        """Whether the card paid (or was refunded), now or at the session recovered now."""
        return self.reason in (
            ShopReason.PAID,
            ShopReason.RECOVERED,
            ShopReason.REFUNDED,
            ShopReason.REFUND_RECOVERED,
        )


@dataclass
class _Unfinished:
    """A split sale whose wallet part is not done yet (kept by the till for the same card)."""

    purpose: str
    amount: int
    aid_amount: int
    wallet_amount: int
    day: date
    aid_seq: int | None = None
    wallet_seq: int | None = None


class ShopTill:
    """A merchant's till taking Cursus aid for the purposes it is registered for.

    Args:
        card_reader: the customer's card reader.
        sam_reader: the till's SAM (Cursus debit key for sales, load key for refunds).
        journal: the till's journal (owner), uploaded like every terminal's.
        shop_name: printed on receipts.
        purposes: what the shop is registered for (subset of :data:`PURPOSES`).
        pos_id: the till's number, the session's ``station_id``.
        clock: time source (timezone-aware).
        screen: where the cashier and the customer read the outcome.
    """

    def __init__(
        self,
        card_reader: Reader,
        sam_reader: Reader,
        journal: Journal,
        *,
        shop_name: str,
        purposes: frozenset[str],
        pos_id: int,
        clock: Callable[[], datetime],
        screen: Screen,
    ) -> None:
        unknown = set(purposes) - set(PURPOSES)
        if unknown or not purposes:
            raise ValueError(f"purposes must be among {sorted(PURPOSES)}: {sorted(unknown)}")
        self.reader = card_reader
        self.sam = SAMResource(sam_reader)
        self.journal = journal
        self.shop_name = shop_name
        self.purposes = frozenset(purposes)
        self.pos_id = pos_id
        self.clock = clock
        self.screen = screen
        self.step_hook: Callable[[str], None] | None = None
        self._unfinished: dict[bytes, _Unfinished] = {}

    # -- public -----------------------------------------------------------------------------
    def sale(self, purpose: str, amount: int, *, wallet: bool = False) -> ShopResult:
        """Sell for ``amount`` eurocents under ``purpose``: the aid pays what it can.

        With ``wallet`` (the holder agrees), the rest is debited from the wallet in a second
        session; otherwise it is paid outside the card. Never raises for a card, reader or SAM
        problem.

        Raises:
            JournalError: the journal failed (the till must stop).
        """
        return self._run(purpose, amount, refund=False, wallet=wallet)

    def refund(self, purpose: str, amount: int) -> ShopResult:
        """Give ``amount`` eurocents of ``purpose`` aid back to the card (same day, same till)."""
        return self._run(purpose, amount, refund=True)

    def refundable(self, card_serial: bytes, purpose: str, day: date) -> int:
        """What this till may still give back to this card for this purpose on ``day``.

        The aid sold to the card that day (committed or still uncertain: a sale the card may
        hold), minus the refunds committed or uncertain that day. Purposes sharing one counter
        (sport, leisure) share one cap per purpose code sold.
        """
        target = PURPOSES[purpose]
        total = 0
        states = (TransactionState.COMMITTED, TransactionState.UNCERTAIN)
        for record in self.journal.records(states, card_serial=card_serial):
            intent = record.intent
            if to_local(intent.occurred_at).date() != day:
                continue
            if intent.product_code != target.product_code:
                continue
            for movement in intent.movements:
                if movement.purse != target.purse:
                    continue
                if intent.kind is TransactionKind.AID_DEBIT:
                    total += -movement.amount
                elif intent.kind is TransactionKind.AID_REFUND:
                    total -= movement.amount
        return max(total, 0)

    # -- one operation ----------------------------------------------------------------------
    def _run(self, purpose: str, amount: int, *, refund: bool, wallet: bool = False) -> ShopResult:
        if purpose not in PURPOSES or purpose not in self.purposes:
            return self._show(ShopResult(ShopReason.NOT_REGISTERED, purpose, amount), refund)
        if not 0 < amount < 1 << (8 * COUNTER_SIZE):
            return self._show(ShopResult(ShopReason.BAD_AMOUNT, purpose, amount), refund)
        counter = APDUCounter()
        self.sam.use_counter(counter)
        try:
            result = self._operate(PURPOSES[purpose], amount, refund, wallet, counter)
        except (CommunicationError, ReaderError) as exc:
            if sam_unreachable(exc):
                result = ShopResult(ShopReason.SAM_UNAVAILABLE, purpose, amount)
            else:
                log.info("card left: %s", exc)
                result = ShopResult(ShopReason.TAP_AGAIN, purpose, amount)
        except (EngineError, SchemaError) as exc:
            log.warning("card refused or unreadable: %s", exc)
            result = ShopResult(ShopReason.CARD_ERROR, purpose, amount)
        result.card_apdus = counter.card
        return self._show(result, refund)

    def _operate(
        self, purpose: Purpose, amount: int, refund: bool, wallet: bool, counter: APDUCounter
    ) -> ShopResult:
        now = self.clock()
        atr = self.reader.atr if self.reader.connected else self.reader.connect()
        card = CalypsoCard(atr=atr)
        tm = CardTransactionManager(self.reader, card, self.sam, counter=counter)
        purse: ApplicationImage | None = None
        if wallet and not refund:
            # The wallet first (its SV state and debit log), so that Cursus stays selected.
            purse = tm.process_select_application(WALLET, reads=("sv_debit_log",))
            if purse is not None and not purse.invalidated:
                tm.prepare_sv_get(debit=True)
                tm.process_commands()
            else:
                purse = None
        app = tm.process_select_application(CURSUS, reads=(AID_FILE,))
        if app is None:
            return ShopResult(ShopReason.NO_CURSUS, purpose.name, amount)
        if app.invalidated:
            return ShopResult(ShopReason.INVALIDATED, purpose.name, amount)
        tx_counter = tm.process_get_traceability()
        record = app.record(AID_FILE, 1) or BLANK_RECORD
        decided = self.journal.resolve(card.serial, tx_counter, [record])
        if purse is not None:
            # Never an empty log: an empty one would decide every unanchored record ABORTED.
            sv_log = non_blank(purse.file_records("sv_debit_log")) or (BLANK_RECORD,)
            decided += self.journal.resolve(card.serial, tx_counter, sv_log)
        day = to_local(now).date()
        if purse is not None:
            unfinished = self._unfinished.get(card.serial)
            if unfinished is not None and (
                unfinished.purpose,
                unfinished.amount,
                unfinished.day,
            ) == (
                purpose.name,
                amount,
                day,
            ):
                done = self._finish(tm, card.serial, purse, unfinished, tx_counter, now)
                if done is not None:
                    done.recovered = decided
                    return done
        kind = TransactionKind.AID_REFUND if refund else TransactionKind.AID_DEBIT
        again = _same_operation(decided, kind, purpose, amount, now)
        if again is not None:
            reason = ShopReason.REFUND_RECOVERED if refund else ShopReason.RECOVERED
            moved = abs(again.amount)
            return ShopResult(
                reason,
                purpose.name,
                amount,
                aid_amount=moved,
                rest=0 if refund else amount - moved,
                aid_after=again.balance_after,
                recovered=decided,
            )
        balance = _counter_value(record, purpose.counter)
        if refund:
            cap = self.refundable(card.serial, purpose.name, to_local(now).date())
            if amount > cap:
                result = ShopResult(ShopReason.REFUND_OVER_CAP, purpose.name, amount)
                result.lines.append(f"Au plus {_euros(cap)} remboursables")
                result.recovered = decided
                return result
            moved, role = amount, KeyRole.LOAD
        else:
            moved, role = min(balance, amount), KeyRole.DEBIT
            if moved == 0:
                return ShopResult(ShopReason.NO_AID, purpose.name, amount, recovered=decided)
            rest = amount - moved
            if purse is not None and rest:
                if purse.sv is None or purse.sv.balance < rest:
                    return ShopResult(
                        ShopReason.WALLET_SHORT, purpose.name, amount, recovered=decided
                    )
                split = _Unfinished(purpose.name, amount, moved, rest, day)
        delta = moved if refund else -moved
        after = balance + delta
        written = _with_counter(record, purpose.counter, after)

        def prepare(opening: SessionOpening) -> None:
            if refund:
                tm.prepare_increase(AID_FILE, purpose.counter, moved)
            else:
                tm.prepare_decrease(AID_FILE, purpose.counter, moved)

        def intent(opening: SessionOpening) -> TransactionIntent:
            return TransactionIntent(
                kind=kind,
                application=CURSUS,
                card_serial=card.serial,
                card_tx_counter=opening.transaction_counter,
                occurred_at=now,
                movements=(
                    PurseMovement(purpose.purse, PurseUnit.EUROCENT, delta, balance, after),
                ),
                product_code=purpose.product_code,
                station_id=self.pos_id,
                written_event=written,
            )

        split_sale = None if refund or purse is None or amount == moved else split

        def began(seq: int, _intent: TransactionIntent) -> None:
            if split_sale is not None:
                split_sale.aid_seq = seq
                self._unfinished[card.serial] = split_sale

        outcome = run_journaled_session(
            tm,
            self.sam,
            self.journal,
            prepare,
            intent,
            role=role,
            step=lambda name: self._step(f"cursus:{name}"),
            after_begin=began,
        )
        result = ShopResult(
            ShopReason.TAP_AGAIN,
            purpose.name,
            amount,
            aid_amount=moved,
            rest=0 if refund else amount - moved,
            aid_after=after,
            outcome=outcome,
            recovered=decided,
        )
        if not outcome.committed:
            if split_sale is not None and outcome.status != SessionOutcome.UNCERTAIN:
                self._unfinished.pop(card.serial, None)  # the card certainly paid nothing
            return _failed(result, outcome)
        if split_sale is not None:
            assert purse is not None
            paid = self._finish(tm, card.serial, purse, split_sale, None, now)
            assert paid is not None
            paid.recovered, paid.outcome = decided, outcome
            return paid
        try:
            tm.process_ratification()
        except EngineError as exc:
            log.info("ratification not delivered: %s", exc)
        result.reason = ShopReason.REFUNDED if refund else ShopReason.PAID
        return result

    def _finish(
        self,
        tm: CardTransactionManager,
        serial: bytes,
        purse: ApplicationImage,
        split: _Unfinished,
        tx_counter: int | None,
        now: datetime,
    ) -> ShopResult | None:
        """The wallet part of a split sale whose aid part is (or may be) on the card.

        Returns ``None`` when the aid part is known not to be on the card (its session aborted):
        the sale starts again from scratch.
        """
        purpose = PURPOSES[split.purpose]
        result = ShopResult(
            ShopReason.TAP_AGAIN,
            split.purpose,
            split.amount,
            aid_amount=split.aid_amount,
            wallet_amount=split.wallet_amount,
            aid_after=0,  # the wallet pays only when the aid is spent to the last cent
        )
        if split.aid_seq is None:
            self._unfinished.pop(serial, None)
            return None
        aid_state = self.journal.get(split.aid_seq).state
        if aid_state is TransactionState.ABORTED:
            self._unfinished.pop(serial, None)
            return None
        if aid_state is not TransactionState.COMMITTED:
            return result  # the card cannot tell yet: nothing more is written
        if split.wallet_seq is not None:
            wallet_state = self.journal.get(split.wallet_seq).state
            if wallet_state is TransactionState.COMMITTED:
                self._unfinished.pop(serial, None)
                result.reason = ShopReason.RECOVERED
                return result
            if wallet_state is TransactionState.UNCERTAIN:
                return result
        sv_raw = non_blank(purse.file_records("sv_debit_log"))
        try:
            if tx_counter is not None or tm.card.current != WALLET:
                # Any command after a close ratifies it: this Select ratifies the Cursus session.
                selected = tm.process_select_application(WALLET)
                if selected is None:
                    result.reason = ShopReason.PARTIAL
                    return result
        except (CommunicationError, ReaderError):
            result.reason = ShopReason.PARTIAL
            return result
        when = to_local(now).replace(tzinfo=None, second=0, microsecond=0)
        app = tm.card.applications[WALLET]

        def prepare(opening: SessionOpening) -> None:
            # The card's debit log names this till by its SAM's serial (Calypso Rev 3 SV Debit).
            tm.prepare_sv_debit(split.wallet_amount, when)

        def intent(opening: SessionOpening) -> TransactionIntent:
            sv = app.sv  # this session's SV Get, sent before the close
            operation = tm.last_sv_operation  # SV Prepare gave the SAM's numbers
            assert sv is not None and operation is not None
            return sv_debit_intent(
                kind=TransactionKind.SV_DEBIT,
                card_serial=serial,
                card_tx_counter=opening.transaction_counter,
                kvc=operation.kvc,
                balance_before=sv.balance,
                sv_tnum_before=sv.tnum,
                amount=split.wallet_amount,
                at=when,
                sam_id=operation.sam_id,
                sam_tnum=operation.sam_tnum,
                occurred_at=now,
                last_events=sv_raw,
                product_code=purpose.product_code,
                station_id=self.pos_id,
            )

        def began(seq: int, _intent: TransactionIntent) -> None:
            split.wallet_seq = seq

        outcome = run_journaled_session(
            tm,
            self.sam,
            self.journal,
            prepare,
            intent,
            step=lambda name: self._step(f"wallet:{name}"),
            after_begin=began,
        )
        result.outcome = outcome
        if not outcome.committed:
            if outcome.status != SessionOutcome.UNCERTAIN:
                split.wallet_seq = None
            _failed(result, outcome)
            if result.reason == ShopReason.TAP_AGAIN:
                result.reason = ShopReason.PARTIAL
            return result
        self._unfinished.pop(serial, None)
        try:
            tm.process_ratification()
        except EngineError as exc:
            log.info("ratification not delivered: %s", exc)
        result.reason = ShopReason.PAID
        return result

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.step_hook(name)

    def _show(self, result: ShopResult, refund: bool) -> ShopResult:
        lines = [result.reason, *result.lines]
        if result.done:
            purpose = PURPOSES[result.purpose]
            when = to_local(self.clock())
            lines += [
                f"{self.shop_name} — caisse {self.pos_id} — {when:%d/%m/%Y %H:%M}",
            ]
            if refund:
                lines.append(
                    f"Remboursé sur l'aide Cursus {purpose.label} : {_euros(result.aid_amount)}"
                )
            else:
                lines += [
                    f"Achat {purpose.label} : {_euros(result.amount)}",
                    f"Payé par l'aide Cursus {purpose.label} : {_euros(result.aid_amount)}",
                ]
                if result.wallet_amount:
                    lines.append(f"Payé par le porte-monnaie : {_euros(result.wallet_amount)}")
                elif result.rest:
                    lines.append(f"Reste à payer hors carte : {_euros(result.rest)}")
            if result.aid_after is not None:
                lines.append(f"Aide {purpose.label} restante : {_euros(result.aid_after)}")
        result.lines = lines
        self.screen.show(lines)
        return result


def _failed(result: ShopResult, outcome: SessionOutcome) -> ShopResult:
    if sam_unreachable(outcome.cause):
        result.reason = ShopReason.SAM_UNAVAILABLE
    elif outcome.error.startswith("card:"):
        result.reason = ShopReason.CARD_ERROR
    return result


def _counter_value(record: bytes, counter: int) -> int:
    start = (counter - 1) * COUNTER_SIZE
    return int.from_bytes(record[start : start + COUNTER_SIZE], "big")


def _with_counter(record: bytes, counter: int, value: int) -> bytes:
    start = (counter - 1) * COUNTER_SIZE
    return record[:start] + value.to_bytes(COUNTER_SIZE, "big") + record[start + COUNTER_SIZE :]


def _same_operation(
    decided: list[JournalRecord],
    kind: TransactionKind,
    purpose: Purpose,
    amount: int,
    now: datetime,
) -> PurseMovement | None:
    """The movement of a session of the same kind, purpose and day recovered as committed now.

    Its close answer was lost at the previous attempt, which therefore told the cashier to try
    again: the card already paid (or was refunded), so nothing more is written.
    """
    for record in decided:
        intent = record.intent
        if record.state is not TransactionState.COMMITTED or intent.kind is not kind:
            continue
        if intent.product_code != purpose.product_code:
            continue
        if to_local(intent.occurred_at).date() != to_local(now).date():
            continue
        for movement in intent.movements:
            if movement.purse == purpose.purse and abs(movement.amount) <= amount:
                return movement
    return None


def _euros(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d} €"
