"""Does an uploaded record fit the terminal that sent it? (kind and SAM checks of the loop)

Found by fuzzing: a gate uploaded a wallet reload of +500 € and it was posted to its sales
account; a bike-shelter door uploaded a canteen meal and it was posted for the canteen funder to
pay. A record's signatures only prove *which* device sent it, not that such a device may do it.

Two checks, run by the validation loop on every committed record before it is posted:

- **kind**: the session kind (``sv_reload``, ``canteen_meal``...) and the card application must be
  ones this kind of terminal produces (:data:`SESSIONS_BY_KIND`, :data:`APPLICATIONS_BY_KIND`).
  A gate validates and debits; a till serves meals (and may sell wallet reloads, like its
  ``/products/terminal-loads``); a desk loads anything; a gate, door or till writes an
  action-list ``load`` only for the applications it writes. Else ``kind_violation``.
- **SAM**: a record signed by a SAM whose serial is not the one registered for the terminal is a
  ``sam_mismatch`` (a terminal with no registered SAM is not checked).

A record that does not fit is still stored (the card did move the money), but every line of its
posting that is not the card's own purse goes to ``suspense:kind_violation`` or
``suspense:sam_mismatch``: nothing is ever owed to, or by, a payee for it until a supervisor
explains it. The loop calls :meth:`TerminalFit.check` and :func:`suspended` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from backend.auth.roles import TERMINAL_WRITES, Application, TerminalKind
from backend.terminals.models import Terminal

TRANSIT = frozenset({"validation", "counter_decrease", "sv_debit"})

# ``load``: a pending action-list write (prepaid at the desk), only for the applications the
# terminal kind writes (backend.auth.roles.TERMINAL_WRITES).
SESSIONS_BY_KIND: Mapping[TerminalKind, frozenset[str]] = {
    TerminalKind.GATE: TRANSIT | {"load"},
    TerminalKind.BIKE_SHELTER: TRANSIT | {"bike_shelter", "load"},
    TerminalKind.CANTEEN: frozenset({"canteen_meal", "sv_reload", "load"}),
    TerminalKind.DESK: frozenset({"load", "sv_reload"}),
    TerminalKind.INSPECTOR: frozenset(),  # reads only
    # What a partner's reader and a shop's till may report in detail (registered partner,
    # purposes) is checked against their registrations by backend/partners/fit.py.
    TerminalKind.PARTNER: frozenset({"consultation"}),
    TerminalKind.SHOP: frozenset({"aid_debit", "aid_refund", "sv_debit"}),
}

APPLICATIONS_BY_KIND: Mapping[TerminalKind, frozenset[str]] = {
    TerminalKind.GATE: frozenset({"plum", "cursus", "wallet"}),
    TerminalKind.BIKE_SHELTER: frozenset({"plum", "wallet"}),
    TerminalKind.CANTEEN: frozenset({"cursus", "wallet"}),
    TerminalKind.DESK: frozenset(a.value for a in Application),
    TerminalKind.INSPECTOR: frozenset(),
    TerminalKind.PARTNER: frozenset({"employment"}),
    TerminalKind.SHOP: frozenset({"cursus", "wallet"}),
}

KIND_VIOLATION = "kind_violation"
SAM_MISMATCH = "sam_mismatch"


def suspense_account(anomaly_kind: str) -> str:
    """Where the counterparty lines of a misfit record go."""
    return f"suspense:{anomaly_kind}"


@dataclass(frozen=True)
class Misfit:
    """Why a record does not fit its terminal: the anomaly kind and a detail line."""

    kind: str
    detail: str


@dataclass(frozen=True)
class _Profile:
    kind: TerminalKind | None
    sam_serial: str | None


_NOT_REGISTERED = _Profile(None, None)


class TerminalFit:
    """The kind and SAM checks, with the terminals read once per loop chunk.

    Args:
        conn: the chunk's connection (the terminals table is read once, in its transaction).
    """

    def __init__(self, conn: Connection) -> None:
        """See the class docstring."""
        self._conn = conn
        self._profiles: dict[str, _Profile] | None = None

    def _profile(self, terminal_id: str) -> _Profile:
        if self._profiles is None:
            # One statement per chunk, on its first committed record: the whole registry (a
            # region has thousands of devices, a chunk thousands of records).
            self._profiles = {
                row[0]: _Profile(
                    TerminalKind(row[1]), None if row[2] is None else str(row[2]).upper()
                )
                for row in self._conn.execute(
                    select(Terminal.terminal_id, Terminal.kind, Terminal.sam_serial)
                )
            }
        return self._profiles.get(terminal_id, _NOT_REGISTERED)

    def check(self, record: Mapping[str, Any], sam_serial: str | None) -> Misfit | None:
        """The misfit of a committed ``record`` (batch JSON form), or ``None`` when it fits.

        Args:
            record: the record as decoded by the loop (``terminal_id``, ``kind``, ``application``).
            sam_serial: hex serial of the SAM whose signature verified, ``None`` when unsigned.
        """
        profile = self._profile(record["terminal_id"])
        if profile.kind is None:
            return None  # an unregistered terminal cannot have uploaded (checked at upload)
        kind, application = record["kind"], record["application"]
        if kind not in SESSIONS_BY_KIND[profile.kind]:
            return Misfit(
                KIND_VIOLATION,
                f"a {profile.kind.value} terminal does not produce {kind} sessions",
            )
        if kind == "load" and application not in {a.value for a in TERMINAL_WRITES[profile.kind]}:
            return Misfit(
                KIND_VIOLATION,
                f"a {profile.kind.value} terminal does not write action-list loads for "
                f"application {application}",
            )
        if application not in APPLICATIONS_BY_KIND[profile.kind]:
            return Misfit(
                KIND_VIOLATION,
                f"a {profile.kind.value} terminal does not write application {application}",
            )
        if (
            sam_serial is not None
            and profile.sam_serial is not None
            and sam_serial.upper() != profile.sam_serial
        ):
            return Misfit(
                SAM_MISMATCH,
                f"signed by SAM {sam_serial.upper()}, terminal registered with SAM "
                f"{profile.sam_serial}",
            )
        return None


def suspended(misfit: Misfit, lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """``lines`` with every account but the card's purses replaced by the misfit's suspense.

    The card mirror stays (the card did move the money); lines that cancel out in suspense
    (a carnet trip's operator revenue against the carnet pool) disappear.
    """
    suspense = suspense_account(misfit.kind)
    totals: dict[str, int] = {}
    for account, amount in lines:
        target = account if account.startswith("card:") else suspense
        totals[target] = totals.get(target, 0) + amount
    return [(account, amount) for account, amount in totals.items() if amount != 0]
