"""The back office's plots (PNG, matplotlib as in the demo report): taps per hour per network,
revenue per operator per day, anomalies per day. Rows are read by SQLAlchemy and bucketed here
in Paris time (the same code on SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.labels import account_fr, anomaly_kind_fr, operator_fr
from backend.ledger.models import LedgerEntry
from backend.validation.models import Anomaly, Tap

PARIS = ZoneInfo("Europe/Paris")


def _window(query: Any, column: Any, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    return query


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend_outside(ax: Any) -> None:
    """The legend beside the plot, never over a bar or a label."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)


def taps_per_hour(session: Session, start: datetime | None, end: datetime | None) -> bytes:
    """Charged taps per hour of the day (Paris time), one bar series per network (operator)."""
    query = _window(
        select(Tap.operator_id, Tap.occurred_at).where(Tap.charged.is_(True)),
        Tap.occurred_at,
        start,
        end,
    )
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for operator, at in session.execute(query):
        counts[operator or "sans réseau"][at.astimezone(PARIS).hour] += 1
    fig, ax = plt.subplots(figsize=(10, 4))
    if not counts:
        _empty(ax, "aucun passage validé sur la période")
    else:
        hours = list(range(24))
        bottom = [0] * 24
        for operator in sorted(counts):
            values = [counts[operator][h] for h in hours]
            ax.bar(hours, values, bottom=bottom, label=operator_fr(operator))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks(hours)
        ax.set_xlabel("heure (heure de Paris)")
        ax.set_ylabel("passages validés")
        _legend_outside(ax)
    ax.set_title("Passages validés par heure et par réseau")
    return _png(fig)


def revenue_per_operator_per_day(
    session: Session, start: datetime | None, end: datetime | None
) -> bytes:
    """Operator revenue (ledger ``operator:*:revenue``) per day, one line per operator."""
    query = _window(
        select(LedgerEntry.account, LedgerEntry.occurred_at, LedgerEntry.amount).where(
            LedgerEntry.account.like("operator:%:revenue"), LedgerEntry.kind != "clearing"
        ),
        LedgerEntry.occurred_at,
        start,
        end,
    )
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for account, at, amount in session.execute(query):
        per_day[account][at.astimezone(PARIS).date().isoformat()] += int(amount)
    fig, ax = plt.subplots(figsize=(10, 4))
    if not per_day:
        _empty(ax, "aucune recette sur la période")
    else:
        days = sorted({d for counter in per_day.values() for d in counter})
        for account in sorted(per_day):
            ax.plot(
                days,
                [per_day[account][d] / 100 for d in days],
                marker="o",
                label=account_fr(account),
            )
        ax.set_ylabel("euros")
        ax.tick_params(axis="x", rotation=30)
        _legend_outside(ax)
    ax.set_title("Recettes par exploitant et par jour")
    return _png(fig)


def anomalies_per_day(session: Session, start: datetime | None, end: datetime | None) -> bytes:
    """Anomalies detected per day, stacked by kind (French names)."""
    query = _window(select(Anomaly.kind, Anomaly.detected_at), Anomaly.detected_at, start, end)
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for kind, at in session.execute(query):
        per_kind[kind][at.astimezone(PARIS).date().isoformat()] += 1
    fig, ax = plt.subplots(figsize=(10, 4))
    if not per_kind:
        _empty(ax, "aucune anomalie sur la période")
    else:
        days = sorted({d for counter in per_kind.values() for d in counter})
        bottom = [0] * len(days)
        for kind in sorted(per_kind):
            values = [per_kind[kind][d] for d in days]
            ax.bar(days, values, bottom=bottom, label=anomaly_kind_fr(kind))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("anomalies")
        _legend_outside(ax)
    ax.set_title("Anomalies par jour")
    return _png(fig)


PLOTS = {
    "taps-per-hour": taps_per_hour,
    "revenue-per-operator": revenue_per_operator_per_day,
    "anomalies-per-day": anomalies_per_day,
}
