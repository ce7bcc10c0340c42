"""A reference model of the validation loop's rules, written from ``docs/validation-loop.md``.

:func:`expected_state` is a plain function from the records as the loop receives them (batches in
arrival order) to the state the rules say the loop must end in: which card sessions are charged
(and by which record), the ledger balance of every account, and the open anomalies. It shares no
code with ``backend/validation/loop.py``: it recomputes each card's state from the set of sessions
known after every record instead of updating it, and has its own posting rules for the few session
kinds the tests generate (wallet debits at gates, reloads at a desk, an aid purse spent at a gate).

The rules, per card (session numbers; the card counter counts down):

- the first committed, verified record of a session is its original and is charged; any later
  one is a ``replay`` (a recovered session is not charged by a record: its original confirms it);
- a card log read at session ``s`` names sessions ``s-1, s-2...``; those not known as originals
  and above the card's first original at that moment are recovered;
- gaps: sessions between the card's first and last original, neither original nor recovered;
- per purse, between two consecutive originals of the purse with different balances: nothing
  while a gap lies between them; else the difference is the inferred movement of the oldest
  recovered session between them (money purses: posted card <-> ``suspense:card_log_recovery``);
  else a ``chain_break`` (raised once, never resolved).

Terminal sequences: a batch's missing numbers between the terminal's highest known sequence and
the batch's highest are gaps until received (``sequence_gap``); a terminal's first delivered
batch starts its numbering.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OPERATORS = {1042: "ilevia", 2001: "arc-en-ciel"}
SUSPENSE_LOG = "suspense:card_log_recovery"


@dataclass(frozen=True)
class Move:
    """A purse movement of a record."""

    purse: str
    amount: int
    before: int

    @property
    def after(self) -> int:
        """Balance after the movement."""
        return self.before + self.amount


@dataclass(frozen=True)
class Rec:
    """A record as the tests send it (enough to predict what the loop makes of it)."""

    terminal: str
    seq: int
    card: str  # pseudonym
    counter: int
    session: int  # session number of the counter
    kind: str  # validation, sv_debit, sv_reload
    moves: tuple[Move, ...]
    log: tuple[bytes, ...]  # newest first
    station: int | None
    forged: bool = False

    def content(self) -> tuple[Any, ...]:
        """What the terminal sequence dedup compares (a stand-in for the record digest)."""
        return (self.card, self.counter, self.kind, self.moves, self.log, self.forged)


@dataclass
class Delivery:
    """One batch as uploaded: its terminal, id and records (a copy has the same id)."""

    terminal: str
    batch_id: str
    records: tuple[Rec, ...]


@dataclass
class State:
    """What the rules predict."""

    charged: dict[tuple[str, int], tuple[str, int] | None]  # session -> original or recovered
    ledger: dict[str, int]  # account -> balance, zero balances left out
    open_anomalies: Counter[tuple[Any, ...]]


@dataclass
class _Card:
    originals: dict[int, Rec] = field(default_factory=dict)
    recovered: set[int] = field(default_factory=set)
    breaks: set[tuple[int, int, str]] = field(default_factory=set)


def posting(rec: Rec) -> tuple[list[tuple[str, int]], str | None]:
    """Ledger lines of an original, and the anomaly its posting raises (if any)."""
    lines: list[tuple[str, int]] = []
    anomaly = None
    for move in rec.moves:
        if not move.amount:
            continue
        card = f"card:{rec.card}:{move.purse}"
        if move.purse == "wallet.sv" and rec.kind == "sv_reload":
            other = f"sales:{rec.terminal}"
        elif move.purse == "wallet.sv" and move.amount < 0 and rec.station in OPERATORS:
            other = f"operator:{OPERATORS[rec.station]}:revenue"
        elif move.purse.endswith("_aid") and move.amount < 0 and rec.kind == "sv_debit":
            other, anomaly = "suspense:ring_fence", "ring_fence_violation"  # aid is not fare
        else:
            raise AssertionError(f"the model has no posting rule for {rec}")
        lines += [(card, move.amount), (other, -move.amount)]
    return lines, anomaly


def _derive(card: _Card) -> tuple[set[int], dict[tuple[int, str], int], list[tuple[int, int, str]]]:
    """Gaps, inferred amounts and breaking pairs of a card, from its sessions alone."""
    known = sorted(card.originals)
    gaps = {
        n
        for n in range(known[0] + 1, known[-1])
        if n not in card.originals and n not in card.recovered
    }
    inferred: dict[tuple[int, str], int] = {}
    breaks = []
    purses = sorted({m.purse for r in card.originals.values() for m in r.moves})
    for purse in purses:
        chain = [
            (n, next(m for m in card.originals[n].moves if m.purse == purse))
            for n in known
            if any(m.purse == purse for m in card.originals[n].moves)
        ]
        for (low, a), (high, b) in itertools.pairwise(chain):
            difference = b.before - a.after
            if not difference or any(low < n < high for n in gaps):
                continue
            inside = [n for n in sorted(card.recovered) if low < n < high]
            if inside:
                inferred[(inside[0], purse)] = difference
            else:
                breaks.append((low, high, purse))
    return gaps, inferred, breaks


def expected_state(deliveries: list[Delivery], counter_of: Any) -> State:
    """The state the documented rules give for ``deliveries`` processed in this order."""
    stored: dict[str, tuple[Rec, ...]] = {}
    seen: dict[tuple[str, int], tuple[Any, ...]] = {}
    terminals: dict[str, tuple[int, set[int]]] = {}  # last seq, open gaps
    cards: dict[str, _Card] = {}
    ledger: Counter[str] = Counter()
    anomalies: Counter[tuple[Any, ...]] = Counter()
    for delivery in deliveries:
        if delivery.batch_id in stored:
            continue  # the same batch again: a duplicate, nothing happens
        stored[delivery.batch_id] = delivery.records
        for rec in delivery.records:
            key = (rec.terminal, rec.seq)
            if key in seen:
                if seen[key] != rec.content():
                    anomalies[("sequence_reuse", rec.terminal, rec.seq)] += 1
                continue
            seen[key] = rec.content()
            if rec.forged:
                anomalies[("forged_signature", rec.card, rec.counter)] += 1
                continue
            card = cards.setdefault(rec.card, _Card())
            if rec.session in card.originals:
                anomalies[("replay", rec.card, rec.counter)] += 1
                continue
            card.originals[rec.session] = rec
            card.recovered.discard(rec.session)
            lines, violation = posting(rec)
            for account, amount in lines:
                ledger[account] += amount
            if violation:
                anomalies[(violation, rec.card, rec.counter)] += 1
            first = min(card.originals)
            for index in range(len(rec.log)):
                named = rec.session - 1 - index
                if named > first and named not in card.originals:
                    card.recovered.add(named)
            _, _, breaks = _derive(card)
            card.breaks.update(breaks)
        # terminal sequence gaps, per batch
        seqs = [r.seq for r in delivery.records]
        last, open_gaps = terminals.get(delivery.terminal, (min(seqs) - 1, set()))
        open_gaps -= set(seqs)
        top = max(last, *seqs)
        open_gaps |= {n for n in range(last + 1, top + 1) if n not in seqs}
        terminals[delivery.terminal] = (top, open_gaps)
    charged: dict[tuple[str, int], tuple[str, int] | None] = {}
    for pseudonym, card in cards.items():
        gaps, inferred, _ = _derive(card)
        for rec in card.originals.values():
            charged[(pseudonym, rec.counter)] = (rec.terminal, rec.seq)
        for n in card.recovered:
            charged[(pseudonym, counter_of(n))] = None
            anomalies[("recovered_from_card_log", pseudonym, counter_of(n))] += 1
        for n in gaps:
            anomalies[("card_counter_gap", pseudonym, counter_of(n))] += 1
        if card.breaks:
            anomalies[("chain_break", pseudonym, None)] += len(card.breaks)
        for (_, purse), amount in inferred.items():
            ledger[f"card:{pseudonym}:{purse}"] += amount
            ledger[SUSPENSE_LOG] -= amount
    for terminal, (_, open_gaps) in terminals.items():
        for n in open_gaps:
            anomalies[("sequence_gap", terminal, n)] += 1
    return State(charged, {a: v for a, v in ledger.items() if v}, anomalies)
