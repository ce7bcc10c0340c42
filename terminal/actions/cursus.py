"""Pending Cursus aid credits (granted by a funder) as one Update Record of the aid counters.

The card carries the number of the last credit written in counter 9 of ``cursus.aid_counters``
(``last_action``, card_schema). Every pending credit of the card with a higher number is added to
its purse and the number moved to the highest one, all in the one Update Record of the aid
counter record, inside the meal's own session (opened with the load key, which grants the meal's
debit operations too). A meal paid from the canteen aid takes its amount in that same record
instead of a Decrease: no extra APDU then, one otherwise. A terminal that reads a ``last_action``
at least the action's number knows it was written (by any till, at any time); a torn session
leaves the old record, so the next tap writes the credit, once.

Credits are written in action-number order: the backend numbers actions as it creates them, and
every pending credit of the card is written at the same tap, so no lower number can arrive after
a higher one was written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from card_schema.records import decode_record, encode_record
from card_schema.records.cursus import AID_LAST_ACTION
from terminal.actions.lists import PendingAction
from terminal.engine.image import ApplicationImage

log = logging.getLogger(__name__)

PURSES = {  # action params "purse" -> field of cursus.aid_counters
    "cursus.books_aid": "books_equipment",
    "cursus.sport_aid": "sport_leisure",
    "cursus.canteen_aid": "canteen",
}
COUNTER_MAX = (1 << 24) - 1


@dataclass(frozen=True)
class AidCredit:
    """The credits written at this tap and the aid counter values after them.

    Attributes:
        actions: the credits, in number order.
        values: ``cursus.aid_counters`` fields after the credits (``last_action`` moved).
    """

    actions: tuple[PendingAction, ...]
    values: dict[str, Any]

    def record(self, canteen_debit: int = 0) -> bytes:
        """The aid counter record to write, with ``canteen_debit`` taken for the meal."""
        values = dict(self.values)
        values["canteen"] = int(values["canteen"]) - canteen_debit
        return encode_record("cursus.aid_counters", values)

    def apply(self, cursus: ApplicationImage) -> None:
        """The credits in the terminal's copy of the card (the meal is decided with them)."""
        cursus.records.setdefault("aid_counters", {})[1] = self.record()


def last_action(cursus: ApplicationImage) -> int:
    """The number of the last credit written on the card (0: none)."""
    raw = cursus.record("aid_counters")
    return 0 if raw is None else int(decode_record("cursus.aid_counters", raw)[AID_LAST_ACTION])


def plan_aid_credit(
    cursus: ApplicationImage, actions: tuple[PendingAction, ...]
) -> AidCredit | None:
    """Every pending aid credit not yet on the card, or ``None``."""
    raw = cursus.record("aid_counters")
    if raw is None:
        return None
    values = decode_record("cursus.aid_counters", raw)
    done = int(values[AID_LAST_ACTION])
    written: list[PendingAction] = []
    for action in actions:
        if action.kind != "aid_credit" or action.action_id <= done:
            continue
        field = PURSES.get(str(action.params.get("purse")))
        amount = action.params.get("amount")
        if field is None or type(amount) is not int or amount <= 0:
            log.warning("action %d: not an aid credit this till can write", action.action_id)
            continue
        if int(values[field]) + amount > COUNTER_MAX:
            log.warning("action %d waits: the %s counter would overflow", action.action_id, field)
            break  # keep the number order: nothing after it either
        values[field] = int(values[field]) + amount
        values[AID_LAST_ACTION] = action.action_id
        written.append(action)
    if not written:
        return None
    return AidCredit(tuple(written), values)
