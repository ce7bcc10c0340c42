"""The deny-list: card serials that every gate refuses ("Carte bloquée").

A deny-list is versioned. The backend pushes it signed (:mod:`terminal.fares.signed`), either whole
(a *full* list, any newer version) or as a *delta* that adds and removes serials and applies only to
the version just before it (N-1 -> N). Lists stay small: a card leaves the list once it has been
caught and invalidated on the card itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from terminal.fares.local_time import to_utc
from terminal.fares.model import normalise_serial

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DenyList:
    """One version of the deny-list.

    Attributes:
        version: version number; 0 is the empty list a terminal starts with.
        issued_at: when the backend issued this version (aware).
        serials: denied card serials, upper-case hex.
    """

    version: int = 0
    issued_at: datetime = _EPOCH
    serials: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "serials", frozenset(normalise_serial(s) for s in self.serials))

    def __contains__(self, serial: object) -> bool:
        return isinstance(serial, str) and normalise_serial(serial) in self.serials

    def __len__(self) -> int:
        return len(self.serials)

    def age(self, now: datetime) -> timedelta:
        """How old this version is at ``now`` (for supervision: a stale list is still used)."""
        return to_utc(now) - to_utc(self.issued_at)

    def with_delta(
        self,
        *,
        version: int,
        issued_at: datetime,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> DenyList:
        """The next version: this list plus ``add`` minus ``remove``.

        The caller (:func:`terminal.fares.signed.accept_deny_list`) has already checked that
        ``version`` follows this one.
        """
        removed = {normalise_serial(s) for s in remove}
        added = {normalise_serial(s) for s in add}
        return DenyList(version, issued_at, frozenset((self.serials - removed) | added))
