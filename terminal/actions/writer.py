"""The hooks a tap calls to write a pending action in the session it opens anyway.

:class:`ActionWriter` holds the terminal's :class:`~terminal.actions.lists.ActionLists` and its
:class:`~terminal.actions.outbox.ActionOutbox`. A validator calls, in this order:

1. :meth:`plan_plum` after the PLUM selection (records read, no network): the load to write, or
   ``None`` (nothing pending for this card, or already on the card). With a load, the session is
   opened with the load key instead of the debit key (same APDU);
2. :meth:`apply` after the opening: the load goes into the terminal's copy of the card, so the
   tap decides with it (a season pass bought online is what lets the passenger through);
3. :meth:`prepare` while queueing the session's commands (returns whether it took over the tap's
   counter debit);
4. :meth:`written` right after ``journal.begin`` (write-ahead, before the close);
5. :meth:`ended` with the session's outcome.
"""

from __future__ import annotations

import logging
from datetime import date

from terminal.actions.cursus import AidCredit, plan_aid_credit
from terminal.actions.lists import ActionLists
from terminal.actions.outbox import ActionOutbox
from terminal.actions.plum import PlumLoad, plan_plum_load
from terminal.engine import CalypsoCard, CardTransactionManager
from terminal.engine.image import ApplicationImage
from terminal.engine.journaled import SessionOutcome
from terminal.journal import Journal

log = logging.getLogger(__name__)


class ActionWriter:
    """Pending actions of the list in force, written at the tap, recorded write-ahead."""

    def __init__(self, lists: ActionLists, outbox: ActionOutbox | None = None) -> None:
        self.lists = lists
        self.outbox = outbox
        self._settled = False  # the first tap settles what a previous process left undecided

    def plan_plum(self, card: CalypsoCard, today: date) -> PlumLoad | None:
        """The PLUM load to write at this tap (the first pending one not on the card)."""
        pending = self.lists.pending_for(card.serial.hex(), "plum")
        if not pending:
            return None
        return plan_plum_load(card.application("plum"), pending, today)

    def plan_cursus(self, card: CalypsoCard) -> AidCredit | None:
        """The Cursus aid credits to write at this tap (every pending one not on the card)."""
        pending = self.lists.pending_for(card.serial.hex(), "cursus")
        if not pending:
            return None
        return plan_aid_credit(card.application("cursus"), pending)

    @staticmethod
    def apply(plum: ApplicationImage, load: PlumLoad) -> None:
        """The load in the terminal's copy of the card (after the opening read the counters)."""
        load.apply(plum)

    @staticmethod
    def prepare(
        manager: CardTransactionManager,
        plum: ApplicationImage,
        load: PlumLoad,
        counter_debit: tuple[int, int] | None,
    ) -> bool:
        """Queue the load's writes; ``True`` when the counter debit ``(slot, trips)`` of the tap
        went into the load's counter update (the caller then sends no Decrease)."""
        manager.prepare_update_record("contracts", load.slot, load.contract)
        manager.prepare_update_record("contract_list", 1, load.contract_list)
        if load.trips is None:
            return False
        debits = {} if counter_debit is None else {counter_debit[0]: counter_debit[1]}
        manager.prepare_update_record("counters", 1, load.counters(plum, debits))
        return counter_debit is not None

    def written(
        self, seq: int, action_ids: list[int], card_serial: bytes, card_tx_counter: int
    ) -> None:
        """Write-ahead: session ``seq`` (journaled, not closed yet) writes these actions."""
        if self.outbox is not None:
            for action_id in action_ids:
                self.outbox.record(action_id, card_serial.hex(), card_tx_counter, seq)

    def ended(self, seq: int | None, outcome: SessionOutcome) -> None:
        """The session's outcome (an uncertain one is settled at the card's next tap here)."""
        if self.outbox is None or seq is None:
            return
        if outcome.status == SessionOutcome.COMMITTED:
            self.outbox.session_ended(seq, True)
        elif outcome.status in (SessionOutcome.ABORTED, SessionOutcome.NOT_STARTED):
            self.outbox.session_ended(seq, False)

    def settle(self, journal: Journal, resolved: bool = True) -> None:
        """Writes the journal has decided since: after ``journal.resolve`` decided records
        (``resolved``), and at the first tap of the process (a process killed between the
        journal's commit and :meth:`ended` left its row ``written``)."""
        if self.outbox is not None and (resolved or not self._settled):
            self.outbox.settle(journal)
        self._settled = True
