"""Login throttling: repeated password failures per account and per client are slowed down.

Found by fuzzing: ``POST /api/v1/auth/token`` accepted unlimited password guesses. Now, after
:attr:`LoginThrottle.account_free` failures for one user name, or :attr:`LoginThrottle.client_free`
failures from one client address (whatever the user names), every further attempt is refused
with 429, a French message and ``Retry-After``, for a delay that doubles with each failure past
the free ones (:attr:`LoginThrottle.base_delay_s`, capped at :attr:`LoginThrottle.max_delay_s`).
A success clears the account's failures. Failures older than ``window_s`` are forgotten.

The state is in the memory of one backend process (one ``uvicorn`` worker, as deployed): a
restart forgets it, which only gives an attacker one more short series of guesses. The clock is
injectable so tests never wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.errors import BackendError


class TooManyAttempts(BackendError):
    """Too many failed logins: wait ``retry_after_s`` seconds."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after_s: int) -> None:
        """See the class docstring."""
        self.retry_after_s = retry_after_s
        super().__init__(
            f"trop de tentatives de connexion : réessayez dans {retry_after_s} s",
            f"too many login attempts: try again in {retry_after_s} s",
        )

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` of the answer."""
        return {"Retry-After": str(self.retry_after_s)}


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    blocked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Failure counts per account and per client; see the module docstring."""

    account_free: int = 5
    client_free: int = 20
    base_delay_s: float = 30.0
    max_delay_s: float = 900.0
    window_s: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _accounts: dict[str, _Failures] = field(default_factory=dict)
    _clients: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, username: str, client: str) -> None:
        """Refuse the attempt while the account or the client is blocked.

        Raises:
            TooManyAttempts: with the seconds left to wait.
        """
        now = self.clock()
        with self._lock:
            waits = [
                entry.blocked_until - now
                for entry in (self._accounts.get(username), self._clients.get(client))
                if entry is not None and entry.blocked_until > now
            ]
        if waits:
            raise TooManyAttempts(max(1, int(max(waits) + 0.999)))

    def failed(self, username: str, client: str) -> int:
        """Count a failure; returns the delay now imposed (0 while attempts are still free)."""
        now = self.clock()
        delays = []
        with self._lock:
            for table, key, free in (
                (self._accounts, username, self.account_free),
                (self._clients, client, self.client_free),
            ):
                entry = table.setdefault(key, _Failures())
                entry.times = [t for t in entry.times if now - t < self.window_s] + [now]
                excess = len(entry.times) - free
                if excess > 0:
                    delay = min(self.max_delay_s, self.base_delay_s * 2 ** (excess - 1))
                    entry.blocked_until = now + delay
                    delays.append(delay)
            self._prune(now)
        return int(max(delays, default=0))

    def succeeded(self, username: str) -> None:
        """A good password clears the account's failures (not the client's)."""
        with self._lock:
            self._accounts.pop(username, None)

    def _prune(self, now: float) -> None:
        for table in (self._accounts, self._clients):
            if len(table) > 10_000:
                for key in [k for k, v in table.items() if now - max(v.times) > self.window_s]:
                    del table[key]
