"""Ledger accounts and the posting rules of one card session (pure functions, no IO).

Accounts (eurocents; an entry's lines sum to zero; a card purse account mirrors the purse):

============================================  ==============================================
``card:<pseudonym>:<purse>``                  the card's purse (``wallet.sv``, aid purses)
``operator:<operator_id>:revenue``            transit revenue owed to an operator
``operator:<operator_id>:aid.<purpose>``      mobility aid spent on its network
``school:<uai>:canteen.wallet``               canteen meals paid from the wallet
``school:<uai>:aid.<purpose>``                aid spent at a school (owed by the funder)
``merchant:<terminal_id>:aid.<purpose>``      aid spent at a merchant terminal
``terminal:<terminal_id>:revenue``            wallet spent at a terminal with no operator
``sales:<terminal_id>``                       money a sales point collected for reloads
``funder:region:<purpose>``                   the funder of a ring-fenced aid purse
``plum:carnet_pool``                          carnet sales, drawn as trips are taken
``plum:pass_pool``                            season-pass sales, shared among operators
``suspense:<reason>``                         amounts waiting for an explanation
``clearing:<payer>``                          what a payer settled at period close
============================================  ==============================================

Ring-fencing: an aid purse pays only for its purpose (:data:`AID_USES`); a violation still
mirrors the card (the card did move the money) but goes to ``suspense:ring_fence``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WALLET = "wallet.sv"
SUSPENSE_RING_FENCE = "suspense:ring_fence"
SUSPENSE_CARD_LOG = "suspense:card_log_recovery"
SUSPENSE_CREDIT = "suspense:unexplained_credit"
SUSPENSE_PURSE = "suspense:unknown_purse"
CARNET_POOL = "plum:carnet_pool"
PASS_POOL = "plum:pass_pool"

TRANSIT_KINDS = frozenset({"validation", "counter_decrease", "sv_debit", "bike_shelter"})

# Which session kinds each aid purpose may pay for (ring-fenced purses).
AID_USES: dict[str, frozenset[str]] = {
    "canteen": frozenset({"canteen_meal"}),
    "books": frozenset({"aid_debit"}),
    "sport": frozenset({"aid_debit"}),
    "mobility": TRANSIT_KINDS,
}


def aid_purpose(purse: str) -> str | None:
    """``canteen`` for ``cursus.canteen_aid`` and the like; ``None`` for a non-aid purse."""
    name = purse.rpartition(".")[2]
    return name[: -len("_aid")] if name.endswith("_aid") else None


def funder_account(purpose: str) -> str:
    """The funder of an aid purpose (the Region funds every aid in this version)."""
    return f"funder:region:{purpose}"


def card_account(pseudonym: str, purse: str) -> str:
    """The ledger mirror of one card purse."""
    return f"card:{pseudonym}:{purse}"


def operator_account(operator_id: str) -> str:
    """Transit revenue owed to an operator."""
    return f"operator:{operator_id}:revenue"


@dataclass(frozen=True)
class SessionContext:
    """What the posting rules need to know about one card session besides its movements."""

    kind: str
    card: str
    terminal_id: str
    operator_id: str | None
    school_uai: str | None
    trip_value: int


@dataclass(frozen=True)
class Posting:
    """Lines of one entry, and why some went to suspense (``None`` when all is regular)."""

    lines: list[tuple[str, int]]
    violation: str | None = None


def session_posting(ctx: SessionContext, movements: Sequence[dict[str, Any]]) -> Posting:
    """The ledger lines of a committed card session.

    Money movements (``unit`` eurocent) post the card purse against its counterparty; trips
    taken from a PLUM counter are valued at the product's ``trip_value`` and move revenue from
    the carnet pool to the operator. Other count movements (meal counters) are not money.

    Args:
        ctx: the session's kind, card pseudonym, terminal, operator, school and trip value.
        movements: the record's movements as in the batch JSON.

    Returns:
        The lines (possibly none) and a ring-fence or unexplained-credit note.
    """
    lines: list[tuple[str, int]] = []
    violation: str | None = None
    for movement in movements:
        amount = movement["amount"]
        if amount == 0:
            continue
        purse = movement["purse"]
        if movement["unit"] == "count":
            if (
                ctx.kind == "counter_decrease"
                and purse.startswith("plum.counter")
                and amount < 0
                and ctx.trip_value > 0
            ):
                value = -amount * ctx.trip_value
                lines.append((operator_account(ctx.operator_id or "unmapped"), value))
                lines.append((CARNET_POOL, -value))
            continue
        counterparty, note = _counterparty(ctx, purse, amount)
        violation = violation or note
        lines.append((card_account(ctx.card, purse), amount))
        lines.append((counterparty, -amount))
    return Posting(lines, violation)


def _counterparty(ctx: SessionContext, purse: str, amount: int) -> tuple[str, str | None]:
    purpose = aid_purpose(purse)
    if amount > 0:
        if purse == WALLET and ctx.kind in ("sv_reload", "load"):
            return f"sales:{ctx.terminal_id}", None
        if purpose is not None and ctx.kind == "load":
            return funder_account(purpose), None
        if purpose is not None and ctx.kind == "aid_refund":
            # A shop's same-day reversal: the merchant gives back what the aid paid it.
            return f"merchant:{ctx.terminal_id}:aid.{purpose}", None
        return SUSPENSE_CREDIT, f"{purse} credited by a {ctx.kind} session"
    if purse == WALLET:
        if ctx.kind == "canteen_meal":
            return f"school:{ctx.school_uai or 'unknown'}:canteen.wallet", None
        if ctx.kind in TRANSIT_KINDS and ctx.operator_id is not None:
            return operator_account(ctx.operator_id), None
        return f"terminal:{ctx.terminal_id}:revenue", None
    if purpose is None:
        return SUSPENSE_PURSE, f"unknown money purse {purse}"
    if ctx.kind not in AID_USES.get(purpose, frozenset()):
        return SUSPENSE_RING_FENCE, f"{purse} (ring-fenced: {purpose}) spent on {ctx.kind}"
    if ctx.school_uai is not None:
        return f"school:{ctx.school_uai}:aid.{purpose}", None
    if purpose == "mobility" and ctx.operator_id is not None:
        return f"operator:{ctx.operator_id}:aid.{purpose}", None
    return f"merchant:{ctx.terminal_id}:aid.{purpose}", None
