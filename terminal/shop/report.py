"""A shop till's daily report, from its own journal (what the till did, before any upload)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from card_schema.uploads.records import JournalRecord, TransactionKind, TransactionState
from terminal.fares.local_time import to_local
from terminal.shop.till import PURPOSE_BY_CODE, PURPOSES


@dataclass
class PurposeLine:
    """Sales and refunds of one purpose (eurocents)."""

    sales: int = 0
    sales_amount: int = 0
    refunds: int = 0
    refunds_amount: int = 0

    @property
    def net(self) -> int:
        return self.sales_amount - self.refunds_amount


@dataclass
class ShopDayReport:
    """The till's day: per purpose, and the sessions still uncertain (decided at a later tap)."""

    terminal_id: str
    day: date
    purposes: dict[str, PurposeLine] = field(default_factory=dict)
    uncertain: int = 0

    @property
    def net(self) -> int:
        return sum(line.net for line in self.purposes.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal_id,
            "day": self.day.isoformat(),
            "purposes": {
                name: {
                    "sales": line.sales,
                    "sales_amount": line.sales_amount,
                    "refunds": line.refunds,
                    "refunds_amount": line.refunds_amount,
                    "net": line.net,
                }
                for name, line in sorted(self.purposes.items())
            },
            "net": self.net,
            "uncertain": self.uncertain,
        }

    def to_text(self) -> str:
        lines = [f"Caisse {self.terminal_id} — journée du {self.day:%d/%m/%Y}"]
        for name, line in sorted(self.purposes.items()):
            label = PURPOSES[name].label
            lines.append(
                f"Aide {label} : {line.sales} vente(s) {_euros(line.sales_amount)}, "
                f"{line.refunds} remboursement(s) {_euros(line.refunds_amount)}, "
                f"net {_euros(line.net)}"
            )
        lines.append(f"Total dû par le financeur : {_euros(self.net)}")
        if self.uncertain:
            lines.append(
                f"{self.uncertain} opération(s) à confirmer au prochain passage de la carte"
            )
        return "\n".join(lines)


def shop_day_report(records: Iterable[JournalRecord], terminal_id: str, day: date) -> ShopDayReport:
    """The report of ``day`` (Europe/Paris) from the till's journal records."""
    report = ShopDayReport(terminal_id, day)
    for record in records:
        intent = record.intent
        if to_local(intent.occurred_at).date() != day:
            continue
        if intent.kind not in (TransactionKind.AID_DEBIT, TransactionKind.AID_REFUND):
            continue
        if record.state is TransactionState.UNCERTAIN:
            report.uncertain += 1
            continue
        if record.state is not TransactionState.COMMITTED:
            continue
        purpose = PURPOSE_BY_CODE.get(intent.product_code or -1)
        if purpose is None:
            continue
        line = report.purposes.setdefault(purpose.name, PurposeLine())
        amount = sum(m.amount for m in intent.movements)
        if intent.kind is TransactionKind.AID_DEBIT:
            line.sales += 1
            line.sales_amount += -amount
        else:
            line.refunds += 1
            line.refunds_amount += amount
    return report


def report_json_text(report: ShopDayReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False, indent=1)


def _euros(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d} €"
