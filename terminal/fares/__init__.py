"""Tariffs and the gate's fare decision.

- :mod:`terminal.fares.model`: the terminal's domain model of the card (``CardImage``...).
- :mod:`terminal.fares.tariff`: the tariff table (GTFS-Fares v2 shaped) and its JSON loader.
- :mod:`terminal.fares.denylist`: the versioned deny-list.
- :mod:`terminal.fares.signed`: signed envelopes for pushed tables; refusals keep the old table.
- :mod:`terminal.fares.store`: the accepted envelopes kept on disk (atomic, durable), reloaded
  and verified again at start.
- :mod:`terminal.fares.rules`: :func:`decide`, pure.
- :mod:`terminal.fares.inspection`: :func:`inspect`, the inspector's read-only explanation.

See ``docs/tariffs.md``.
"""

from terminal.fares.denylist import DenyList
from terminal.fares.inspection import InspectionReport, inspect
from terminal.fares.reasons import DISPLAY_TEXT, Reason
from terminal.fares.rules import Decision, decide
from terminal.fares.tariff import Tariff, load_tariff

__all__ = [
    "DISPLAY_TEXT",
    "Decision",
    "DenyList",
    "InspectionReport",
    "Reason",
    "Tariff",
    "decide",
    "inspect",
    "load_tariff",
]
