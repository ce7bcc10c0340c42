"""Action lists on the terminals: loads sold online or granted by a funder, written at the card's
next tap (télédistribution) in the session the tap opens anyway (docs/action-lists.md).

- :mod:`terminal.actions.lists`: the signed, versioned list in force, kept on disk like the other
  pushed tables (a list failing verification or older than the one held is refused);
- :mod:`terminal.actions.plum`: what a pending PLUM load writes, and whether the card has it;
- :mod:`terminal.actions.outbox`: write-ahead record of each write, confirmed to the backend with
  the card transaction counter of the session once the journal says the card committed it.
"""

from terminal.actions.lists import ACTION_LIST_KIND, ActionLists, PendingAction
from terminal.actions.outbox import ActionOutbox
from terminal.actions.plum import PlumLoad, plan_plum_load

__all__ = [
    "ACTION_LIST_KIND",
    "ActionLists",
    "ActionOutbox",
    "PendingAction",
    "PlumLoad",
    "plan_plum_load",
]
