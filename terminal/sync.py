"""Fetch the pushed tables from the backend: the tariff table and the deny-list (urllib only).

:class:`BackendSync` asks the backend for what it publishes and hands every envelope to
:class:`~terminal.fares.signed.PushedTables`, which verifies it (signature, kind, age, version,
content) before it replaces anything. Nothing fetched is trusted before that.

- Tariff: ``GET /api/v1/tariffs/current``; an envelope whose version the terminal already holds
  (in force or pending) is skipped without a word, a newer one is offered.
- Deny-list: ``GET /api/v1/deny-lists/delta?since=<version in force>`` and each delta offered in
  order; when a delta is refused (chain break, too old...) or the terminal holds no list yet,
  ``GET /api/v1/deny-lists/full`` instead.
- Action lists (with an :class:`~terminal.actions.ActionLists`): ``GET
  /api/v1/action-lists/current``, offered when newer than the list held (verified like the other
  tables, refused when rolled back); then the writes the card committed are confirmed, each with
  the card transaction counter of its session: ``POST /api/v1/action-lists/{id}/confirm``
  (docs/action-lists.md).

Failures are never fatal: a refused table is logged and the previous one stays in force; a network
error or a 5xx is logged and the next round tries again. :meth:`BackendSync.start` runs the rounds
in a daemon thread, so a card decision never waits for the network: the gate reads whatever tables
are in force when the card arrives.

With a store (:class:`~terminal.fares.store.TableStore`; the gate's ``<journal>.tables/``) the
tables accepted survive a restart: the first round after it asks for the deltas since the
reloaded deny-list version, and skips a tariff the terminal already holds. A table that cannot be
stored is in force all the same (logged by :class:`PushedTables`); the round is not failed.

Authentication is the terminal's: ``Authorization: Bearer <credential>`` (the ``rct_...``
credential issued at registration) and ``X-Regioncard-Terminal: <terminal_id>``.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from terminal.actions.lists import ActionLists
from terminal.actions.outbox import ActionOutbox
from terminal.fares.errors import PushedTableError
from terminal.fares.signed import PushedTables, SignedEnvelope

log = logging.getLogger(__name__)

TERMINAL_HEADER = "X-Regioncard-Terminal"
TARIFF_PATH = "/api/v1/tariffs/current"
DENY_FULL_PATH = "/api/v1/deny-lists/full"
DENY_DELTA_PATH = "/api/v1/deny-lists/delta"
ACTION_LIST_PATH = "/api/v1/action-lists/current"
ACTION_CONFIRM_PATH = "/api/v1/action-lists/{}/confirm"
# The backend's 409 code for a confirmation that came before its session was uploaded and
# validated (backend.errors.WriteNotProven): retried, not a refusal.
WRITE_NOT_PROVEN = "write_not_proven"
DEFAULT_INTERVAL_S = 300.0  # a round every 5 minutes
DEFAULT_RETRY_S = 60.0  # after a failed round, try again sooner


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    """What one pull did."""

    UPDATED = "updated"  # a newer table is in force (or pending)
    UNCHANGED = "unchanged"  # the backend has nothing newer
    NOTHING_PUBLISHED = "nothing_published"  # the backend has no table of this kind yet
    REFUSED = "refused"  # the backend sent a table the terminal refused; previous one kept
    UNREACHABLE = "unreachable"  # network error, timeout or backend error; retried later


@dataclass(frozen=True)
class SyncReport:
    """Outcome of one round.

    Attributes:
        tariff: outcome of :meth:`BackendSync.pull_tariff`.
        deny_list: outcome of :meth:`BackendSync.pull_deny_list`.
        actions: outcome of :meth:`BackendSync.pull_action_list` (``UNCHANGED`` without lists).
    """

    tariff: Outcome
    deny_list: Outcome
    actions: Outcome = Outcome.UNCHANGED

    @property
    def reached_backend(self) -> bool:
        """Whether both pulls got an answer from the backend."""
        return Outcome.UNREACHABLE not in (self.tariff, self.deny_list)


class _Unreachable(Exception):
    """A request that got no usable answer (network, timeout, 5xx, unexpected status)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the backend's error code, when its body said one


class _NotFound(Exception):
    """A 404: the backend has nothing of this kind."""


class BackendSync:
    """Pulls the signed tables of one terminal from the backend into its :class:`PushedTables`.

    Thread-safe: rounds are serialised by a lock; the gate reads ``tables`` without waiting.
    """

    def __init__(
        self,
        backend_url: str,
        terminal_id: str,
        credential: str,
        tables: PushedTables | None,
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
        opener: urllib.request.OpenerDirector | None = None,
        actions: ActionLists | None = None,
        outbox: ActionOutbox | None = None,
    ) -> None:
        """Configure the client.

        Args:
            backend_url: base URL, ``https://backend.example`` (no trailing path).
            terminal_id: the registered terminal id (``X-Regioncard-Terminal``).
            credential: the terminal's bearer credential (``rct_...``).
            tables: the tables in force; only their verified ``offer_*`` methods change them.
                ``None`` for a terminal that holds no tariff nor deny-list (a canteen till pulls
                its action list only).
            timeout_s: socket timeout of one request.
            clock: terminal clock (aware), for the tables' age checks.
            opener: a urllib opener (client certificate, proxy); the default one otherwise.
            actions: the action list in force, if this terminal writes loads at the tap.
            outbox: the writes to confirm to the backend.
        """
        self.base_url = backend_url.rstrip("/")
        self.terminal_id = terminal_id
        self._tables = tables
        self.actions = actions
        self.outbox = outbox
        self.timeout_s = timeout_s
        self.clock = clock
        self._credential = credential
        self._opener = opener or urllib.request.build_opener()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_success: datetime | None = None
        self.failed_rounds = 0

    @property
    def tables(self) -> PushedTables:
        """The tables in force (only for a sync that holds some)."""
        assert self._tables is not None, "this sync holds no tariff nor deny-list"
        return self._tables

    def __repr__(self) -> str:
        return f"BackendSync({self.base_url!r}, {self.terminal_id!r})"  # no credential

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, Any] | None = None, *, send: Any = None) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {
            "Authorization": f"Bearer {self._credential}",
            TERMINAL_HEADER: self.terminal_id,
            "Accept": "application/json",
        }
        data = None
        if send is not None:
            data = json.dumps(send).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            url, data=data, method="GET" if send is None else "POST", headers=headers
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read() or b""
            detail, code = _refusal(raw)
            if exc.code == 404:
                raise _NotFound(detail) from exc
            raise _Unreachable(f"HTTP {exc.code} from {url}: {detail}", exc.code, code) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise _Unreachable(f"cannot reach {url}: {exc}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise _Unreachable(f"unreadable answer from {url}") from exc

    # -- pulls --------------------------------------------------------------------------------

    def pull_tariff(self) -> Outcome:
        """Fetch the current tariff table and offer it if newer than the one held.

        Returns:
            What happened; never raises for a network error or a refused table.
        """
        if self._tables is None:
            return Outcome.UNCHANGED
        with self._lock:
            try:
                data = self._get(TARIFF_PATH)
            except _NotFound:
                log.info("tariff: the backend has no table published yet")
                return Outcome.NOTHING_PUBLISHED
            except _Unreachable as exc:
                log.warning("tariff: %s; retried later, table in force kept", exc)
                return Outcome.UNREACHABLE
            try:
                envelope = SignedEnvelope.from_obj(data)
                if envelope.version <= self.tables.held_tariff_version:
                    return Outcome.UNCHANGED
                tariff = self.tables.offer_tariff(envelope, self.clock())
            except PushedTableError as exc:
                log.warning("tariff refused, table in force kept: %s", exc)
                return Outcome.REFUSED
            log.info(
                "tariff version %d accepted (valid from %s)", tariff.version, tariff.valid_from
            )
            return Outcome.UPDATED

    def pull_deny_list(self) -> Outcome:
        """Bring the deny-list up to date: the deltas since the version held, else the full list.

        Returns:
            What happened; never raises for a network error or a refused list.
        """
        if self._tables is None:
            return Outcome.UNCHANGED
        with self._lock:
            current = self.tables.deny_list.version
            if current > 0:
                try:
                    deltas = self._get(DENY_DELTA_PATH, {"since": current})
                except _NotFound:
                    deltas = None
                except _Unreachable as exc:
                    if exc.status == 422:  # the backend does not know our version: full list
                        deltas = None
                    else:
                        log.warning("deny-list: %s; retried later, list in force kept", exc)
                        return Outcome.UNREACHABLE
                if isinstance(deltas, list):
                    outcome = self._apply_deltas(deltas)
                    if outcome is not None:
                        return outcome
            return self._pull_full_deny_list()

    def _apply_deltas(self, deltas: list[Any]) -> Outcome | None:
        """Offer each delta in order; ``None`` when a full list is needed."""
        if not deltas:
            return Outcome.UNCHANGED
        for data in deltas:
            try:
                self.tables.offer_deny_list(SignedEnvelope.from_obj(data), self.clock())
            except PushedTableError as exc:
                log.info("deny-list delta not applied (%s); asking for the full list", exc)
                return None
        log.info("deny-list version %d accepted (deltas)", self.tables.deny_list.version)
        return Outcome.UPDATED

    def _pull_full_deny_list(self) -> Outcome:
        try:
            data = self._get(DENY_FULL_PATH)
        except _NotFound:
            log.info("deny-list: the backend has no list published yet")
            return Outcome.NOTHING_PUBLISHED
        except _Unreachable as exc:
            log.warning("deny-list: %s; retried later, list in force kept", exc)
            return Outcome.UNREACHABLE
        try:
            envelope = SignedEnvelope.from_obj(data)
            if envelope.version <= self.tables.deny_list.version:
                return Outcome.UNCHANGED
            deny_list = self.tables.offer_deny_list(envelope, self.clock())
        except PushedTableError as exc:
            log.warning("deny-list refused, list in force kept: %s", exc)
            return Outcome.REFUSED
        log.info("deny-list version %d accepted (full list)", deny_list.version)
        return Outcome.UPDATED

    def pull_action_list(self) -> Outcome:
        """Fetch the action list and offer it if newer; then confirm the committed writes.

        Returns:
            What happened to the list; never raises for a network error or a refused list.
        """
        if self.actions is None:
            return Outcome.UNCHANGED
        with self._lock:
            self._confirm_writes()
            try:
                data = self._get(ACTION_LIST_PATH)
            except _NotFound:
                return Outcome.NOTHING_PUBLISHED
            except _Unreachable as exc:
                log.warning("action list: %s; retried later, list in force kept", exc)
                return Outcome.UNREACHABLE
            try:
                envelope = SignedEnvelope.from_obj(data)
                if envelope.version <= self.actions.version:
                    return Outcome.UNCHANGED
                count = self.actions.offer(envelope, self.clock())
            except PushedTableError as exc:
                log.warning("action list refused, list in force kept: %s", exc)
                return Outcome.REFUSED
            except OSError as exc:
                log.error("action list not stored, list in force kept: %s", exc)
                return Outcome.REFUSED
            log.info("action list version %d accepted (%d actions)", envelope.version, count)
            return Outcome.UPDATED

    def _confirm_writes(self) -> None:
        if self.outbox is None:
            return
        for write in self.outbox.due():
            body = {"card_serial": write.card_serial, "card_tx_counter": write.card_tx_counter}
            try:
                self._get(ACTION_CONFIRM_PATH.format(write.action_id), send=body)
            except _NotFound as exc:
                log.warning("action %d unknown to the backend: %s", write.action_id, exc)
            except _Unreachable as exc:
                if exc.status != 409 or exc.code == WRITE_NOT_PROVEN:
                    # Unreachable, or the session that wrote it is not uploaded and validated
                    # yet: the row stays, and the next round confirms it again.
                    log.warning("action %d not confirmed yet: %s", write.action_id, exc)
                    return
                # Confirmed with another counter, or cancelled: the backend's record stands.
                log.error("action %d confirmation refused: %s", write.action_id, exc)
            self.outbox.sent(write)

    def sync(self) -> SyncReport:
        """One round: tariff, deny-list, action list. Never raises for network errors or
        refusals."""
        report = SyncReport(
            tariff=self.pull_tariff(),
            deny_list=self.pull_deny_list(),
            actions=self.pull_action_list(),
        )
        if report.reached_backend:
            self.last_success = self.clock()
            self.failed_rounds = 0
        else:
            self.failed_rounds += 1
        return report

    # -- background rounds --------------------------------------------------------------------

    def start(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        retry_s: float = DEFAULT_RETRY_S,
        immediately: bool = True,
    ) -> None:
        """Run :meth:`sync` every ``interval_s`` s in a daemon thread (sooner after a failure).

        Args:
            interval_s: seconds between two rounds that reached the backend.
            retry_s: seconds before the next round after one that did not (capped by
                ``interval_s``).
            immediately: run the first round at once (else after ``interval_s``).

        Calling it again while running does nothing.
        """
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run,
            args=(interval_s, retry_s, immediately),
            name="backend-sync",
            daemon=True,
        )
        self._thread.start()

    def _run(self, interval_s: float, retry_s: float, immediately: bool) -> None:
        if not immediately:
            self._stop.wait(interval_s)
        while not self._stop.is_set():
            try:
                report = self.sync()
            except Exception:  # a bug must not stop the rounds, nor the gate
                log.exception("backend sync round failed")
                report = SyncReport(Outcome.UNREACHABLE, Outcome.UNREACHABLE)
            wait = interval_s if report.reached_backend else min(retry_s, interval_s)
            self._stop.wait(wait)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the background rounds (waits for a round in progress up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None


def _refusal(body: bytes) -> tuple[str, str | None]:
    """The backend's error message and code (``error``), when the body is one of its refusals;
    else the start of the body and no code."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return body[:200].decode("utf-8", "replace"), None
    message = data.get("message")
    code = data.get("error")
    return (
        message if isinstance(message, str) else body[:200].decode("utf-8", "replace"),
        code if isinstance(code, str) else None,
    )
