"""The signed action list in force on one terminal.

The backend serves ``GET /api/v1/action-lists/current``: an envelope of kind ``action_list``
(the same Ed25519 envelope as tariffs and deny-lists, ``terminal/fares/signed.py``) whose version
is its issue time in milliseconds and whose payload is ``{"actions": [{"action_id",
"card_serial", "application", "kind", "params"}, ...]}``: every pending write for the
applications this kind of terminal writes.

A list replaces the one in force only if its signature holds, its kind is ``action_list``, it is
not older than :data:`ACTION_LIST_MAX_AGE`, its version is newer than the one held (a replayed or
rolled-back list is refused: it could bring back a load already written) and its payload is well
formed. On any refusal the exception propagates and the previous list stays. Accepted lists are
written to the terminal's :class:`~terminal.fares.store.TableStore` (``action_list.json``) before
they are put in force, and reloaded (and verified again) at start.

The tap reads :meth:`ActionLists.pending_for` without any lock and never waits for the network.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from terminal.fares.errors import MalformedTableRefused, PushedTableError, RollbackRefused
from terminal.fares.signed import MAX_CLOCK_SKEW, SignedEnvelope, verify_envelope
from terminal.fares.store import TableStore, TableStoreError

log = logging.getLogger(__name__)

ACTION_LIST_KIND = "action_list"
ACTION_LIST_DOCUMENT = "action_list.json"
STORE_FORMAT = "regioncard-action-list/1"
# The backend issues a fresh list at every pull; an old one may name loads since cancelled.
ACTION_LIST_MAX_AGE = timedelta(days=3)
KINDS = frozenset(
    {"load_contract", "sv_reload", "aid_credit", "school_transport", "right_grant", "move_balance"}
)
_SERIAL = re.compile(r"^[0-9A-F]{2,32}$")


@dataclass(frozen=True)
class PendingAction:
    """One write waiting for its card.

    Attributes:
        action_id: the backend's action number; written on the card with the load (the contract's
            ``ContractSerialNumber`` for PLUM), which is how any terminal sees it was applied.
        card_serial: upper-case hex serial of the card.
        application: card application written (``plum``, ``cursus``, ``wallet``, ``employment``).
        kind: what is written (``load_contract``, ``aid_credit``...).
        params: the kind's parameters, as the backend signed them.
    """

    action_id: int
    card_serial: str
    application: str
    kind: str
    params: Mapping[str, Any]


def parse_actions(payload: Any) -> tuple[PendingAction, ...]:
    """The actions of a signed payload, oldest first.

    Raises:
        ValueError: the payload is not a list of well-formed actions.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("actions"), list):
        raise ValueError("payload has no 'actions' list")
    actions: list[PendingAction] = []
    seen: set[int] = set()
    for item in payload["actions"]:
        if not isinstance(item, Mapping):
            raise ValueError("an action is not an object")
        action_id, serial = item.get("action_id"), item.get("card_serial")
        application, kind, params = item.get("application"), item.get("kind"), item.get("params")
        if type(action_id) is not int or not 1 <= action_id < 2**24 or action_id in seen:
            raise ValueError(f"bad or repeated action_id {action_id!r}")
        if not isinstance(serial, str) or not _SERIAL.match(serial.upper()):
            raise ValueError(f"action {action_id}: bad card_serial")
        if not isinstance(application, str) or not application:
            raise ValueError(f"action {action_id}: bad application")
        if kind not in KINDS:
            raise ValueError(f"action {action_id}: unknown kind {kind!r}")
        if not isinstance(params, Mapping):
            raise ValueError(f"action {action_id}: params is not an object")
        seen.add(action_id)
        actions.append(PendingAction(action_id, serial.upper(), application, str(kind), params))
    return tuple(sorted(actions, key=lambda a: a.action_id))


class _State:
    def __init__(self, version: int, actions: tuple[PendingAction, ...]) -> None:
        self.version = version
        self.by_card: dict[tuple[str, str], tuple[PendingAction, ...]] = {}
        grouped: dict[tuple[str, str], list[PendingAction]] = {}
        for action in actions:
            grouped.setdefault((action.card_serial, action.application), []).append(action)
        self.by_card = {key: tuple(value) for key, value in grouped.items()}
        self.count = len(actions)


class ActionLists:
    """The action list in force (verified), read by taps without waiting."""

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        *,
        store: TableStore | None = None,
        max_age: timedelta = ACTION_LIST_MAX_AGE,
        max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    ) -> None:
        """Start empty, then reload the stored list (a bad stored list is set aside, not used).

        Args:
            public_key: the backend's table-signing key.
            store: where the accepted list is kept; in memory only if ``None``.
            max_age: oldest ``issued_at`` of a pulled list.
            max_clock_skew: how far in the future ``issued_at`` may be.
        """
        self._public_key = public_key
        self._store = store
        self._max_age = max_age
        self._skew = max_clock_skew
        self._lock = threading.Lock()
        self._state = _State(0, ())
        if store is not None:
            self._restore(store)

    @property
    def version(self) -> int:
        """Version of the list in force (0: none yet)."""
        return self._state.version

    @property
    def count(self) -> int:
        """Number of pending actions in the list in force."""
        return self._state.count

    def pending_for(self, card_serial: str, application: str) -> tuple[PendingAction, ...]:
        """The pending actions of one card for one application, oldest first (no lock)."""
        return self._state.by_card.get((card_serial.upper(), application), ())

    def offer(self, envelope: SignedEnvelope, now: datetime) -> int:
        """Verify a pulled list and put it in force; returns its number of actions.

        Raises:
            PushedTableError: refused (signature, kind, age, rollback, payload); the previous
                list stays in force.
            OSError: the store could not write it; the previous list stays in force.
        """
        verify_envelope(
            envelope,
            self._public_key,
            kinds={ACTION_LIST_KIND},
            now=now,
            max_age=self._max_age,
            max_clock_skew=self._skew,
        )
        actions = _actions_of(envelope)
        with self._lock:
            if envelope.version <= self._state.version:
                raise RollbackRefused(
                    f"liste d'actions {envelope.version} non plus récente que "
                    f"{self._state.version}, liste précédente conservée",
                    f"action list version {envelope.version} is not newer than "
                    f"{self._state.version} (replay or rollback), previous list kept",
                    kind=envelope.kind,
                    version=envelope.version,
                )
            if self._store is not None:
                self._store.write(
                    ACTION_LIST_DOCUMENT, {"format": STORE_FORMAT, "envelope": envelope.to_obj()}
                )
            self._state = _State(envelope.version, actions)
        return len(actions)

    def _restore(self, store: TableStore) -> None:
        try:
            document = store.read(ACTION_LIST_DOCUMENT)
        except TableStoreError as exc:
            log.error("stored action list unreadable, set aside: %s", exc)
            store.set_aside(ACTION_LIST_DOCUMENT)
            return
        if document is None:
            return
        try:
            if not isinstance(document, Mapping) or document.get("format") != STORE_FORMAT:
                raise MalformedTableRefused(
                    "liste d'actions enregistrée illisible",
                    "stored action list has an unknown format",
                    kind=ACTION_LIST_KIND,
                    version=None,
                )
            envelope = SignedEnvelope.from_obj(document.get("envelope"))
            verify_envelope(
                envelope,
                self._public_key,
                kinds={ACTION_LIST_KIND},
                now=datetime.now().astimezone(),
                max_age=self._max_age,
                check_age=False,
            )
            self._state = _State(envelope.version, _actions_of(envelope))
        except PushedTableError as exc:
            log.error("stored action list refused, set aside: %s", exc)
            store.set_aside(ACTION_LIST_DOCUMENT)


def _actions_of(envelope: SignedEnvelope) -> tuple[PendingAction, ...]:
    try:
        return parse_actions(envelope.payload)
    except ValueError as exc:
        raise MalformedTableRefused(
            "liste d'actions mal formée, liste précédente conservée",
            f"malformed action list: {exc}; previous list kept",
            kind=envelope.kind,
            version=envelope.version,
        ) from exc
