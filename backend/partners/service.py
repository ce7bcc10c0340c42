"""Registering partner readers and shop tills; their records as the back office reads them.

No FastAPI here. Records come from the validation loop's ``taps`` (consultations and aid sales
are card sessions like any other) and from the ledger (``merchant:<terminal>:aid.<purpose>``).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.auth.roles import TerminalKind
from backend.errors import InvalidRequest, NotFound
from backend.ledger.models import LedgerEntry
from backend.partners.fit import SHOP_PURPOSES
from backend.partners.models import PartnerTerminal, ShopTerminal
from backend.terminals.service import RegisteredTerminal, register_terminal
from backend.validation.models import Tap, TapStatus
from card_schema.errors import SchemaError
from card_schema.records import decode_record
from card_schema.records.employment import PARTNERS

PARIS = ZoneInfo("Europe/Paris")
COUNTED = (TapStatus.POSTED, TapStatus.RECOVERED)


def register_partner_terminal(
    session: Session,
    *,
    terminal_id: str,
    partner: str,
    site: int,
    label: str = "",
    sam_serial: bytes | None = None,
    public_key: bytes | None = None,
) -> RegisteredTerminal:
    """Register an employment partner's reader (kind ``partner``) for one agency and site.

    Raises:
        InvalidRequest: unknown partner, or a site that is not a 16-bit number.
        Conflict: the terminal or its SAM is already registered.
    """
    if partner not in PARTNERS.values() or partner == "none":
        raise InvalidRequest(f"partenaire inconnu : {partner}", f"unknown partner {partner}")
    if not 0 <= site < 1 << 16:
        raise InvalidRequest("numéro de site invalide (0 à 65535)", "site is 0..65535")
    registered = register_terminal(
        session,
        terminal_id=terminal_id,
        kind=TerminalKind.PARTNER,
        label=label,
        station_id=site,
        sam_serial=sam_serial,
        public_key=public_key,
    )
    session.add(PartnerTerminal(terminal_id=terminal_id, partner=partner, site=site))
    session.flush()
    return registered


def register_shop_terminal(
    session: Session,
    *,
    terminal_id: str,
    shop_name: str,
    purposes: frozenset[str],
    sam_serial: bytes | None = None,
    public_key: bytes | None = None,
) -> RegisteredTerminal:
    """Register a merchant till (kind ``shop``) with the aid purposes it may take.

    Raises:
        InvalidRequest: no purpose, or one not among books, sport, leisure.
        Conflict: the terminal or its SAM is already registered.
    """
    unknown = sorted(set(purposes) - set(SHOP_PURPOSES))
    if unknown or not purposes:
        raise InvalidRequest(
            f"usages invalides {unknown} (livres : books, sport, loisirs : leisure)",
            f"purposes must be among {sorted(SHOP_PURPOSES)}",
        )
    registered = register_terminal(
        session,
        terminal_id=terminal_id,
        kind=TerminalKind.SHOP,
        label=shop_name,
        sam_serial=sam_serial,
        public_key=public_key,
    )
    session.add(
        ShopTerminal(
            terminal_id=terminal_id, shop_name=shop_name, purposes=",".join(sorted(purposes))
        )
    )
    session.flush()
    return registered


def consultations(session: Session, card_pseudonyms: list[str]) -> list[dict[str, Any]]:
    """The consultation records uploaded for a card (under any of its pseudonyms), oldest first.

    Each: when, which partner and site, what was read, which reader (as the card's log has it).
    """
    rows = session.execute(
        select(Tap.occurred_at, Tap.terminal_id, Tap.written_event)
        .where(
            Tap.card_pseudonym.in_(card_pseudonyms),
            Tap.kind == "consultation",
            Tap.status.in_(COUNTED),
        )
        .order_by(Tap.occurred_at)
    ).all()
    out = []
    for occurred_at, terminal_id, written in rows:
        try:
            entry = decode_record("employment.consultation", bytes.fromhex(written or ""))
        except (SchemaError, ValueError):
            continue
        out.append(
            {
                "occurred_at": occurred_at,
                "terminal_id": terminal_id,
                "partner": entry["partner"],
                "partner_site": entry["partner_site"],
                "read": entry["read"],
                "consulted_at": entry["consulted_at"],
            }
        )
    return out


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=PARIS).astimezone(UTC)
    return start, end


def shop_daily_report(session: Session, terminal_id: str, day: date) -> dict[str, Any]:
    """One till's day (Europe/Paris): aid sales, refunds, net, and wallet parts per purpose.

    Raises:
        NotFound: no shop till of that id.
    """
    shop = session.get(ShopTerminal, terminal_id)
    if shop is None:
        raise NotFound(f"caisse {terminal_id} inconnue", f"no shop till {terminal_id}")
    start, end = _day_bounds(day)
    codes = {code: name for name, (_, code) in SHOP_PURPOSES.items()}
    per: dict[str, dict[str, int]] = {
        p: {"sales": 0, "sales_amount": 0, "refunds": 0, "refunds_amount": 0, "wallet_amount": 0}
        for p in shop.purposes.split(",")
    }
    refused = 0
    for kind, product, movements, status in session.execute(
        select(Tap.kind, Tap.product_code, Tap.movements, Tap.status).where(
            Tap.terminal_id == terminal_id, Tap.occurred_at >= start, Tap.occurred_at < end
        )
    ):
        if status == TapStatus.KIND_VIOLATION:
            refused += 1
            continue
        if status not in COUNTED:
            continue
        purpose = None if product is None else codes.get(product)
        if purpose is None or purpose not in per:
            continue
        amount = sum(m["amount"] for m in json.loads(movements or "[]"))
        if kind == "aid_debit":
            per[purpose]["sales"] += 1
            per[purpose]["sales_amount"] += -amount
        elif kind == "aid_refund":
            per[purpose]["refunds"] += 1
            per[purpose]["refunds_amount"] += amount
        elif kind == "sv_debit":
            per[purpose]["wallet_amount"] += -amount
    for line in per.values():
        # What the aid funder owes (the wallet part is the shop's own revenue).
        line["net"] = line["sales_amount"] - line["refunds_amount"]
    return {
        "terminal_id": terminal_id,
        "shop_name": shop.shop_name,
        "day": day.isoformat(),
        "purposes": per,
        "net": sum(line["net"] for line in per.values()),
        "refused_records": refused,
    }


def shop_clearing(session: Session, until: datetime | None = None) -> list[dict[str, Any]]:
    """What each merchant is owed by the funder of each aid purpose, from the ledger.

    One line per ``merchant:<terminal>:aid.<purpose>`` account with a non-zero balance: the
    aid the till took (sales minus refunds) up to ``until`` (all time when ``None``).
    """
    query = select(LedgerEntry.account, func.sum(LedgerEntry.amount)).where(
        LedgerEntry.account.like("merchant:%:aid.%")
    )
    if until is not None:
        query = query.where(LedgerEntry.occurred_at < until)
    lines = []
    for account, total in session.execute(query.group_by(LedgerEntry.account)):
        _, terminal_id, purpose = account.split(":", 2)
        if total:
            lines.append(
                {
                    "terminal_id": terminal_id,
                    "purpose": purpose.removeprefix("aid."),
                    "funder": "region",
                    "owed": int(total),
                }
            )
    return sorted(lines, key=lambda line: (line["terminal_id"], line["purpose"]))
