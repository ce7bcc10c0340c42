"""The canteen manager's daily report, built from the till's journal and its refusal log.

Pure: :func:`daily_report` takes the journal records and the refusals (the CLI reads them) and
returns a :class:`DailyReport`, printed as French text or as JSON.

What counts (``docs/canteen.md``, "Daily report"):

- a **meal** is a COMMITTED Cursus session of kind ``canteen_meal`` for this school whose canteen
  log record (the intent's ``written_event``) is dated that day; its aid part is counted under the
  funder written in that record;
- the **wallet** amount is the sum of the COMMITTED wallet sessions that pay a meal of the day,
  matched by card, meal time, amount and point of sale (the SV debit names its meal);
- a meal whose wallet part has no committed wallet session is listed as **wallet payment
  pending** (the second session was torn and the pupil did not tap again): the meal was logged
  on the card, the money is owed, the backend reconciles it;
- sessions still UNCERTAIN or PENDING are **to be confirmed** at the card's next tap; they are
  not counted as meals yet;
- refused taps are counted by reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from card_schema.uploads.records import JournalRecord, TransactionKind, TransactionState
from terminal.canteen.model import CanteenLogEntry, Funder, MealService, WalletDebit
from terminal.canteen.reasons import MealReason, format_euros
from terminal.canteen.refusals import Refusal
from terminal.canteen.rules import wallet_debit_matches

CURSUS = "cursus"
WALLET = "wallet"
WALLET_LABEL = "Porte-monnaie (Ma région numérique)"


@dataclass(frozen=True)
class PendingPayment:
    """A meal logged on the card whose wallet part was not (yet) debited."""

    terminal_seq: int
    served_at: str
    service: MealService
    amount: int


@dataclass
class DailyReport:
    """Totals of one day at one school's canteen (amounts in eurocents)."""

    school_uai: str
    day: date
    meals_by_service: Counter[MealService] = field(default_factory=Counter)
    aid_by_funder: Counter[Funder] = field(default_factory=Counter)
    wallet_total: int = 0
    pending_payments: list[PendingPayment] = field(default_factory=list)
    to_confirm: int = 0
    refusals_by_reason: Counter[MealReason] = field(default_factory=Counter)

    @property
    def meals(self) -> int:
        """Meals served, all services."""
        return sum(self.meals_by_service.values())

    @property
    def total(self) -> int:
        """Everything collected: aid of every funder and wallet."""
        return sum(self.aid_by_funder.values()) + self.wallet_total

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object: codes, amounts in eurocents, French labels."""
        return {
            "format": "regioncard.canteen-report/1",
            "school_uai": self.school_uai,
            "day": self.day.isoformat(),
            "meals": self.meals,
            "meals_by_service": {
                s.value: {"label": s.label, "count": n}
                for s, n in sorted(self.meals_by_service.items())
            },
            "amounts_by_funder": {
                **{
                    f.value: {"label": f.label, "amount": n}
                    for f, n in sorted(self.aid_by_funder.items())
                },
                WALLET: {"label": WALLET_LABEL, "amount": self.wallet_total},
            },
            "total": self.total,
            "wallet_payments_pending": [
                {
                    "terminal_seq": p.terminal_seq,
                    "served_at": p.served_at,
                    "service": p.service.value,
                    "amount": p.amount,
                }
                for p in self.pending_payments
            ],
            "sessions_to_confirm": self.to_confirm,
            "refusals_by_reason": {
                r.value: {"label": r.text, "count": n}
                for r, n in sorted(self.refusals_by_reason.items())
            },
        }

    def to_text(self) -> str:
        """The report as the manager reads it, in French."""
        lines = [
            f"Rapport de restauration du {self.day:%d/%m/%Y} — établissement {self.school_uai}",
            "",
            f"Repas servis : {self.meals}",
        ]
        lines += [f"  {s.label} : {n}" for s, n in sorted(self.meals_by_service.items())]
        lines += ["", "Montants par financeur :"]
        lines += [f"  {f.label} : {format_euros(n)}" for f, n in sorted(self.aid_by_funder.items())]
        lines.append(f"  {WALLET_LABEL} : {format_euros(self.wallet_total)}")
        lines.append(f"  Total : {format_euros(self.total)}")
        if self.pending_payments:
            owed = sum(p.amount for p in self.pending_payments)
            lines += [
                "",
                f"Paiements porte-monnaie en attente : {len(self.pending_payments)} "
                f"({format_euros(owed)})",
            ]
        if self.to_confirm:
            lines.append(
                f"Passages à confirmer au prochain passage de la carte : {self.to_confirm}"
            )
        lines += ["", f"Passages refusés : {sum(self.refusals_by_reason.values())}"]
        lines += [f"  {r.text} : {n}" for r, n in sorted(self.refusals_by_reason.items())]
        return "\n".join(lines)

    def to_json_text(self) -> str:
        """JSON, indented, UTF-8 French labels kept readable."""
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2, sort_keys=True)


def _canteen_records(records: Iterable[JournalRecord], school_uai: str) -> list[JournalRecord]:
    return [
        r
        for r in records
        if r.intent.kind is TransactionKind.CANTEEN_MEAL and r.intent.school_uai == school_uai
    ]


def daily_report(
    records: Sequence[JournalRecord],
    refusals: Sequence[Refusal],
    school_uai: str,
    day: date,
) -> DailyReport:
    """Totals of ``day`` for the school's canteen (see the module rules).

    Args:
        records: the till's journal records (any states, any kinds; others are ignored).
        refusals: the refusal log's entries (other days and schools are ignored).
        school_uai: the school.
        day: the local date.
    """
    report = DailyReport(school_uai, day)
    canteen = _canteen_records(records, school_uai)
    meals: list[tuple[JournalRecord, CanteenLogEntry]] = []
    debits: list[tuple[JournalRecord, WalletDebit]] = []
    for record in canteen:
        written = record.intent.written_event
        if written is None:
            continue
        if record.intent.application == CURSUS:
            entry = CanteenLogEntry.from_record(written)
            if entry is not None and entry.served_at.date() == day:
                meals.append((record, entry))
        elif record.intent.application == WALLET:
            debit = WalletDebit.from_record(written)
            if debit is not None and debit.at.date() == day:
                debits.append((record, debit))
    committed_debits = [(r, d) for r, d in debits if r.state is TransactionState.COMMITTED]
    for record, entry in meals:
        if record.state in (TransactionState.PENDING, TransactionState.UNCERTAIN):
            report.to_confirm += 1
        if record.state is not TransactionState.COMMITTED:
            continue
        report.meals_by_service[entry.service] += 1
        if entry.aid_amount:
            report.aid_by_funder[entry.funder] += entry.aid_amount
        if entry.wallet_amount:
            paid = [
                (r, d)
                for r, d in committed_debits
                if r.intent.card_serial == record.intent.card_serial
                and wallet_debit_matches(entry, d)
            ]
            if paid:
                report.wallet_total += entry.wallet_amount
            else:
                report.pending_payments.append(
                    PendingPayment(
                        record.seq,
                        entry.served_at.isoformat(timespec="minutes"),
                        entry.service,
                        entry.wallet_amount,
                    )
                )
    report.to_confirm += sum(
        1 for r, _ in debits if r.state in (TransactionState.PENDING, TransactionState.UNCERTAIN)
    )
    for refusal in refusals:
        if refusal.school_uai == school_uai and refusal.at.date() == day:
            report.refusals_by_reason[refusal.reason] += 1
    return report
