"""The desk receipt, a one-page PDF in French (reportlab).

What it prints: the region's name, the receipt number and date, the agent, the holder's name (or
« Carte anonyme »), the card serial, the applications on the card, the loads with their amounts in
euros. Nothing else about the holder: no birth date, no address, no social or employment
situation (only what the holder asked for appears: e.g. an aid line names its purpose).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A5  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

from backend.desk.content import APPLICATION_NAMES_FR

PARIS = ZoneInfo("Europe/Paris")
REGION = "Région Hauts-de-France"
TITLE = "Carte régionale unifiée — reçu de guichet"


def euros(cents: int) -> str:
    """``1250`` -> ``"12,50 €"`` (French formatting)."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole:,}".replace(",", "\u202f") + f",{rest:02d} €"


@dataclass(frozen=True)
class ReceiptData:
    """What one receipt shows.

    Attributes:
        number: receipt (job) number.
        at: when the card was written (aware).
        agent: agent user name.
        holder: holder's name, or ``None`` for an anonymous card.
        card_serial: the card.
        applications: application names on the card.
        removed: applications removed.
        loads: lines ``{"label", "amount_cents", "paid"}`` (``paid``: counted in the total; aid
            granted and balances moved are not).
        replaces: serial of the replaced card, if any.
        kind: job kind (``issue``, ``update``, ``replace``).
    """

    number: int
    at: datetime
    agent: str
    holder: str | None
    card_serial: str
    applications: Sequence[str]
    removed: Sequence[str]
    loads: Sequence[Mapping[str, Any]]
    replaces: str | None
    kind: str


def receipt_pdf(data: ReceiptData) -> bytes:
    """Render the receipt (PDF 1.4, one A5 page, uncompressed text so it can be searched)."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A5, pageCompression=0, invariant=1)
    canvas.setTitle(f"Reçu {data.number} — {REGION}")
    canvas.setAuthor(REGION)
    width, height = A5
    y = height - 18 * mm

    def line(text: str, *, size: int = 10, bold: bool = False, right: str | None = None) -> None:
        nonlocal y
        canvas.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        canvas.drawString(14 * mm, y, text)
        if right is not None:
            canvas.drawRightString(width - 14 * mm, y, right)
        y -= size * 0.5 * mm + 3 * mm

    line(REGION, size=16, bold=True)
    line(TITLE, size=11)
    y -= 2 * mm
    local = data.at.astimezone(PARIS)
    action = {"issue": "Émission", "update": "Mise à jour", "replace": "Remplacement"}
    line(f"Reçu n° {data.number} — {action.get(data.kind, data.kind)}", bold=True)
    line(f"Date : {local:%d/%m/%Y à %H:%M}")
    line(f"Agent : {data.agent}")
    line(f"Titulaire : {data.holder if data.holder else 'Carte anonyme'}")
    line(f"Carte n° {data.card_serial}")
    if data.replaces:
        line(f"Remplace la carte n° {data.replaces} (bloquée)")
    y -= 2 * mm
    line("Applications sur la carte", bold=True)
    for app in data.applications:
        line(f"• {APPLICATION_NAMES_FR.get(app, app)}")
    for app in data.removed:
        line(f"• {APPLICATION_NAMES_FR.get(app, app)} : retirée")
    y -= 2 * mm
    line("Chargements", bold=True)
    total = 0
    if not data.loads:
        line("Aucun chargement")
    for load in data.loads:
        amount = int(load.get("amount_cents", 0))
        if load.get("paid"):
            total += amount
        line(str(load.get("label", "")), right=euros(amount))
    y -= 1 * mm
    line("Total payé", bold=True, right=euros(total))
    y -= 4 * mm
    canvas.setFont("Helvetica", 7)
    canvas.drawString(
        14 * mm,
        y,
        "Vos données : droit d'accès et de rectification auprès de la Région Hauts-de-France.",
    )
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
