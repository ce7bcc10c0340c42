"""Kind checks of partner readers' and shop tills' records (``kind_violation``).

Separate from any general terminal-kind check (another branch adds
``backend/validation/terminal_fit.py``): this module knows only the two kinds registered here
and what each may report. A record that does not fit is refused by the validation loop: stored
with status ``kind_violation``, never charged nor posted, and an anomaly of that kind is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth.roles import TerminalKind
from backend.partners.models import PartnerTerminal, ShopTerminal
from backend.terminals.models import Terminal
from card_schema.errors import SchemaError
from card_schema.records import decode_record

# The shop purposes, the purse each is paid from, and the product code the till writes
# (terminal/shop/till.py: PURPOSES; the two lists are tested against each other).
SHOP_PURPOSES: dict[str, tuple[str, int]] = {
    "books": ("cursus.books_aid", 0x4B01),
    "sport": ("cursus.sport_aid", 0x4B02),
    "leisure": ("cursus.sport_aid", 0x4B03),
}
PURPOSE_OF_CODE = {code: name for name, (_, code) in SHOP_PURPOSES.items()}


@dataclass(frozen=True)
class Registrations:
    """Partner readers and shop tills, as registered (loaded once per loop chunk)."""

    partners: dict[str, tuple[str, int]]  # terminal -> (partner, site)
    shops: dict[str, frozenset[str]]  # terminal -> purposes

    @classmethod
    def load(cls, session: Session) -> Registrations:
        """One query: every terminal of kind partner or shop, with its registration if any.

        A device registered with kind partner or shop through the plain terminal registry has
        no registration here: it may report nothing (every record is a violation).
        """
        partners: dict[str, tuple[str, int]] = {}
        shops: dict[str, frozenset[str]] = {}
        rows = session.execute(
            select(
                Terminal.terminal_id,
                Terminal.kind,
                PartnerTerminal.partner,
                PartnerTerminal.site,
                ShopTerminal.purposes,
            )
            .outerjoin(PartnerTerminal, PartnerTerminal.terminal_id == Terminal.terminal_id)
            .outerjoin(ShopTerminal, ShopTerminal.terminal_id == Terminal.terminal_id)
            .where(Terminal.kind.in_((TerminalKind.PARTNER, TerminalKind.SHOP)))
        )
        for terminal_id, kind, partner, site, purposes in rows:
            if kind == TerminalKind.PARTNER:
                partners[terminal_id] = (partner or "", -1 if site is None else site)
            else:
                shops[terminal_id] = frozenset(filter(None, (purposes or "").split(",")))
        return cls(partners, shops)

    def violation(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` (batch JSON form) does not fit its terminal's registration, or None."""
        terminal = record["terminal_id"]
        if terminal in self.partners:
            return partner_violation(self.partners[terminal], record)
        if terminal in self.shops:
            return shop_violation(self.shops[terminal], record)
        return None


def partner_violation(registration: tuple[str, int], record: dict[str, Any]) -> str | None:
    """A partner reader reports consultations of « Mes droits pour l'emploi » only, as itself."""
    partner, _site = registration
    if not partner:
        return "partner reader registered without its partner (POST /api/v1/partners/terminals)"
    if record["kind"] != "consultation":
        return f"a partner reader reported a {record['kind']} session"
    if record["application"] not in ("employment", "emploi"):
        return f"a partner reader wrote to {record['application']}"
    if record["movements"]:
        return "a consultation moves no purse"
    written = record.get("written_event")
    try:
        entry = decode_record("employment.consultation", bytes.fromhex(written or ""))
    except (SchemaError, ValueError):
        return "the consultation record is not an employment.consultation"
    if entry["partner"] != partner:
        return f"consultation signed as {entry['partner']} by a reader of {partner}"
    return None


def shop_violation(purposes: frozenset[str], record: dict[str, Any]) -> str | None:
    """A shop till reports aid debits and same-day refunds of its registered purposes only."""
    kind = record["kind"]
    if kind not in ("aid_debit", "aid_refund", "sv_debit"):
        return f"a shop till reported a {kind} session"
    purpose = PURPOSE_OF_CODE.get(record["product_code"] or -1)
    if purpose is None or purpose not in purposes:
        return f"purpose {purpose or record['product_code']} not registered for this shop"
    if kind == "sv_debit":
        # The rest of an aid sale, from the wallet with the holder's agreement.
        if record["application"] != "wallet":
            return f"a shop's wallet debit wrote to {record['application']}"
        if [m["purse"] for m in record["movements"]] != ["wallet.sv"] or any(
            m["amount"] >= 0 for m in record["movements"]
        ):
            return "a shop's wallet debit moves only the wallet, downwards"
        return None
    if record["application"] != "cursus":
        return f"a shop till wrote to {record['application']}"
    purse = SHOP_PURPOSES[purpose][0]
    if not record["movements"]:
        return "an aid sale moves the aid purse"
    for movement in record["movements"]:
        if movement["purse"] != purse:
            return f"{movement['purse']} cannot pay for {purpose} (ring-fenced)"
        if (movement["amount"] < 0) != (kind == "aid_debit") or movement["amount"] == 0:
            return f"a {kind} with a movement of {movement['amount']}"
    return None
