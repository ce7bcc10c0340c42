"""The canteen's decision: a pure function from what the card holds, the till and the clock.

:func:`decide_meal` does no IO and reads no clock (``now`` is an argument). It returns a
:class:`MealDecision` saying whether the pupil is served, the French screen text, how much to take
from the canteen aid counter and from the wallet, and the canteen log record to append. The till
(:mod:`terminal.canteen.till`) writes it on the card.

Order of the checks (issue 4; ``docs/canteen.md``):

1. a meal service is open now (local time) -> else "Hors service de restauration";
2. the card has a readable Cursus student record -> else "Carte sans dossier élève";
3. the pupil belongs to this school (UAI) -> else "Élève d'un autre établissement";
4. today lies in the pupil's school year -> else "Carte hors année scolaire";
5. no meal of this service today in this school in the canteen log -> else "Repas déjà pris",
   except when that meal's wallet part was never debited (the second session was torn): then the
   wallet part is taken now, "Bon appétit (paiement complété)";
6. the tariff has a price for this service, boarding status and level -> else "Repas non prévu";
7. the canteen aid counter pays first, the wallet the rest -> "Solde insuffisant" if the two
   together do not cover the price.

Ring-fencing (field facts, "Ring-fenced purses"): only the canteen aid counter pays a meal. The
books/equipment and sport/leisure counters are funds of other purposes and are never read for a
decision, never debited, whatever their balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from card_schema.layout import CARD_LAYOUT
from terminal.canteen.model import (
    AidCounters,
    CanteenLogEntry,
    Funder,
    MealService,
    Student,
    WalletDebit,
)
from terminal.canteen.reasons import MealReason, format_euros
from terminal.canteen.tariff import CanteenTariff
from terminal.fares.local_time import to_local

SV_DEBIT_LOG_SIZE = CARD_LAYOUT.application("wallet").file("sv_debit_log").record_count


@dataclass(frozen=True)
class MealDecision:
    """What the till must do for one tap.

    Attributes:
        reason: why the pupil is served or refused.
        service: the service open at the tap, ``None`` outside service hours.
        day: the local date of the tap.
        price: the meal's price, eurocents (0 when refused before the price is known).
        aid_before: canteen aid counter read on the card.
        wallet_before: wallet SV balance read on the card, ``None`` without a wallet.
        aid_debit: eurocents to take from the canteen aid counter (Cursus session).
        wallet_debit: eurocents to take from the wallet (second session, in the wallet).
        log_entry: the canteen log record to append in the Cursus session; ``None`` when nothing
            is appended (refusal, or completion of a meal logged earlier).
        completes: for :attr:`MealReason.PAYMENT_COMPLETED` (and a recovered meal), the meal
            logged earlier whose payment this decision serves.
        previous: the meal of this service already in the card's log, when there is one.
    """

    reason: MealReason
    service: MealService | None
    day: date
    price: int = 0
    aid_before: int = 0
    wallet_before: int | None = None
    aid_debit: int = 0
    wallet_debit: int = 0
    log_entry: CanteenLogEntry | None = None
    completes: CanteenLogEntry | None = None
    previous: CanteenLogEntry | None = None

    @property
    def accepted(self) -> bool:
        """Whether the pupil gets the tray."""
        return self.reason.serves

    @property
    def message(self) -> str:
        """The French screen line."""
        return self.reason.text

    @property
    def aid_after(self) -> int:
        """Canteen aid left after the meal."""
        return self.aid_before - self.aid_debit

    @property
    def wallet_after(self) -> int | None:
        """Wallet balance after the meal, ``None`` without a wallet."""
        return None if self.wallet_before is None else self.wallet_before - self.wallet_debit

    @property
    def meal(self) -> CanteenLogEntry | None:
        """The meal this decision serves: the new log entry, or the one being completed."""
        return self.log_entry or self.completes

    def receipt_line(self) -> str | None:
        """The French receipt line of a served meal, ``None`` for a refusal.

        ``Repas du 27/11 — aide cantine 3,20 € — porte-monnaie 0,60 € — reste aide 118,40 €``
        """
        meal = self.meal
        if not self.accepted or meal is None:
            return None
        parts = [f"Repas du {meal.served_at:%d/%m}"]
        if self.aid_debit:
            parts.append(f"aide cantine {format_euros(self.aid_debit)}")
        if self.wallet_debit:
            parts.append(f"porte-monnaie {format_euros(self.wallet_debit)}")
        if not self.aid_debit and not self.wallet_debit:
            parts.append("gratuit")
        parts.append(f"reste aide {format_euros(self.aid_after)}")
        wallet_after = self.wallet_after
        if self.wallet_debit and wallet_after is not None:
            parts.append(f"solde porte-monnaie {format_euros(wallet_after)}")
        return " — ".join(parts)


def decide_meal(
    student: Student | None,
    aid: AidCounters,
    wallet_balance: int | None,
    canteen_log: Sequence[CanteenLogEntry],
    school_uai: str,
    tariff: CanteenTariff,
    now: datetime,
    *,
    terminal_id: int,
    wallet_log: Sequence[WalletDebit] | None = None,
    service: MealService | None = None,
) -> MealDecision:
    """Decide one tap at the canteen till (see the module docstring for the order of checks).

    Args:
        student: the Cursus student record, ``None`` if the card has none (or it is unreadable).
        aid: the Cursus aid counters.
        wallet_balance: the wallet's SV balance in eurocents, ``None`` if the card has no wallet.
        canteen_log: the canteen log entries read on the card (blank records left out).
        school_uai: the UAI of the till's school.
        tariff: service hours and prices.
        now: the tap time; a naive value is read as Europe/Paris time.
        terminal_id: the till's point-of-sale number, written in the canteen log (16 bits).
        wallet_log: the wallet's SV debit log entries, newest first, ``None`` if not read; needed
            to tell whether a meal logged earlier still owes its wallet part.
        service: force the service (the cashier's override), else the one open at ``now``.

    Returns:
        The decision; :attr:`MealDecision.accepted` says whether the pupil is served.
    """
    local = to_local(now)
    today = local.date()
    served_at = local.replace(second=0, microsecond=0, tzinfo=None)
    current = service or tariff.service_at(local.time())

    def refuse(
        reason: MealReason, price: int = 0, previous: CanteenLogEntry | None = None
    ) -> MealDecision:
        return MealDecision(
            reason,
            current,
            today,
            price=price,
            aid_before=aid.canteen,
            wallet_before=wallet_balance,
            previous=previous,
        )

    if current is None:
        return refuse(MealReason.OUT_OF_SERVICE)
    if student is None or student.school_uai is None:
        return refuse(MealReason.NO_STUDENT_RECORD)
    if student.school_uai != school_uai:
        return refuse(MealReason.OTHER_SCHOOL)
    if (
        student.valid_from is None
        or student.valid_until is None
        or not student.valid_from <= today <= student.valid_until
    ):
        return refuse(MealReason.OUT_OF_SCHOOL_YEAR)
    taken = _meal_of_service(canteen_log, school_uai, current, today)
    if taken is not None:
        if not _wallet_part_owed(taken, wallet_log):
            return refuse(MealReason.ALREADY_SERVED, taken.price, taken)
        if wallet_balance is None or wallet_balance < taken.wallet_amount:
            return refuse(MealReason.INSUFFICIENT_BALANCE, taken.price, taken)
        return MealDecision(
            MealReason.PAYMENT_COMPLETED,
            current,
            today,
            price=taken.price,
            aid_before=aid.canteen,
            wallet_before=wallet_balance,
            wallet_debit=taken.wallet_amount,
            completes=taken,
            previous=taken,
        )
    price = tariff.price(current, student.boarding, student.level)
    if price is None:
        return refuse(MealReason.NO_TARIFF)
    # Ring-fenced: aid.books_equipment and aid.sport_leisure are deliberately not used here.
    aid_part = min(max(aid.canteen, 0), price)
    wallet_part = price - aid_part
    if wallet_part and (wallet_balance is None or wallet_balance < wallet_part):
        return refuse(MealReason.INSUFFICIENT_BALANCE, price)
    entry = CanteenLogEntry(
        served_at=served_at,
        school_uai=school_uai,
        service=current,
        funder=tariff.aid_funder if aid_part else Funder.NONE,
        aid_amount=aid_part,
        wallet_amount=wallet_part,
        terminal_id=terminal_id,
    )
    return MealDecision(
        MealReason.SERVED,
        current,
        today,
        price=price,
        aid_before=aid.canteen,
        wallet_before=wallet_balance,
        aid_debit=aid_part,
        wallet_debit=wallet_part,
        log_entry=entry,
    )


def _meal_of_service(
    log: Sequence[CanteenLogEntry], school_uai: str, service: MealService, day: date
) -> CanteenLogEntry | None:
    """The newest meal of ``service`` on ``day`` in this school, if the log holds one."""
    for entry in log:  # newest first
        if (
            entry.school_uai == school_uai
            and entry.service is service
            and entry.served_at.date() == day
        ):
            return entry
    return None


def wallet_debit_matches(meal: CanteenLogEntry, debit: WalletDebit) -> bool:
    """Whether an SV debit log entry is the wallet part of ``meal``.

    The till gives the SV Debit command the meal's own date and time (to the minute), so the
    card's SV log names the meal it paid by its time and amount. (Calypso's debit log names the
    terminal by its SAM serial, not by the till's point-of-sale number the canteen log holds;
    one card takes one meal per service, so time and amount are enough.)
    """
    return debit.amount == meal.wallet_amount and debit.at == meal.served_at


def _wallet_part_owed(meal: CanteenLogEntry, wallet_log: Sequence[WalletDebit] | None) -> bool:
    """Whether the card shows that ``meal``'s wallet part was never debited.

    Only a log that certainly covers the time since the meal is evidence: one with free slots
    left, or whose oldest debit is older than the meal. A full log of newer debits (three wallet
    payments since, elsewhere) is inconclusive, and an inconclusive case is never charged: the
    meal is "already served" and the backend reconciles it from the journal records.
    """
    if meal.wallet_amount == 0 or wallet_log is None:
        return False
    if any(wallet_debit_matches(meal, debit) for debit in wallet_log):
        return False
    if len(wallet_log) < SV_DEBIT_LOG_SIZE:
        return True
    return min(debit.at for debit in wallet_log) < meal.served_at
