"""A closed period's clearing statement, as CSV (semicolon, French decimal comma) and PDF.

Each settlement line: payer, payee, account (its French label and its code), amount in euros.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from backend.labels import account_fr
from backend.reconciliation.service import SettlementLine

PARIS = ZoneInfo("Europe/Paris")
REGION = "Région Hauts-de-France"


def euros(cents: int) -> str:
    """``123456`` -> ``1 234,56 €`` (French grouping with a narrow no-break space)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}".replace(",", "\u202f") + f",{part:02d} €"


def statement_csv(period_id: str, lines: Sequence[SettlementLine]) -> str:
    """The statement as CSV (``;``-separated, amounts in euros with a decimal comma)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["période", "payeur", "bénéficiaire", "compte", "libellé", "montant (€)"])
    for line in lines:
        whole, part = divmod(abs(line.amount), 100)
        amount = ("-" if line.amount < 0 else "") + f"{whole},{part:02d}"
        writer.writerow(
            [
                period_id,
                line.payer,
                line.payee,
                line.account,
                account_fr(line.account),
                amount,
            ]
        )
    return out.getvalue()


def statement_pdf(
    period_id: str,
    starts_at: datetime,
    ends_at: datetime,
    lines: Sequence[SettlementLine],
) -> bytes:
    """The statement as one or more A4 pages (uncompressed text, searchable)."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=0, invariant=1)
    canvas.setTitle(f"Relevé de compensation {period_id} — {REGION}")
    width, height = A4
    y = height - 20 * mm

    def text(value: str, *, size: int = 9, bold: bool = False, right: str | None = None) -> None:
        nonlocal y
        if y < 20 * mm:
            canvas.showPage()
            y = height - 20 * mm
        canvas.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        canvas.drawString(15 * mm, y, value)
        if right is not None:
            canvas.drawRightString(width - 15 * mm, y, right)
        y -= size * 0.5 * mm + 2.5 * mm

    text(REGION, size=15, bold=True)
    text(f"Relevé de compensation — période {period_id}", size=12, bold=True)
    start, end = starts_at.astimezone(PARIS), ends_at.astimezone(PARIS)
    text(f"Du {start:%d/%m/%Y %H:%M} au {end:%d/%m/%Y %H:%M} (heure de Paris)")
    y -= 3 * mm
    total = 0
    for line in lines:
        text(f"{account_fr(line.account)}", bold=True, right=euros(line.amount))
        text(f"    payé par {line.payer} à {line.payee} — compte {line.account}", size=7)
        total += line.amount
    y -= 2 * mm
    text("Total réglé", bold=True, right=euros(total))
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
