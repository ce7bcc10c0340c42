"""The upload queue: decided journal records to the backend, in signed idempotent batches.

The queue never sends anything it has not first stored: records are grouped into a batch, the
batch is signed and written to the journal's outbox in one SQL transaction, and only then sent.
A batch is marked uploaded only when an acknowledgement naming its ``batch_id`` comes back. After
a failure or a crash the stored bytes are sent again unchanged, so the backend sees the same batch
id with the same bytes (never the same record in two different batches).

The transport is injected (:class:`UploadTransport`); :class:`HTTPUploadTransport` posts to the
backend's ``/api/v1/uploads`` with the standard library only, because ``httpx`` is a development
dependency and a validator image should not carry it.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.uploads.batch import Ack, AckStatus, Batch, UncertainRef, sign_batch
from terminal.journal.errors import BatchFormatError, JournalError, UploadTransportError
from terminal.journal.store import Journal, StoredBatch

log = logging.getLogger(__name__)

UPLOAD_PATH = "/api/v1/uploads"
TERMINAL_HEADER = "X-Regioncard-Terminal"


class UploadTransport(Protocol):
    """Carries one batch to the backend and brings back the acknowledgement bytes."""

    def send(self, batch_bytes: bytes) -> bytes:
        """Send the wire bytes of one batch.

        Returns:
            The backend's acknowledgement, raw (``docs/batch-format.md``, acknowledgement).

        Raises:
            UploadTransportError: nothing usable came back; ``retryable`` says whether the same
                bytes may succeed later.
        """
        ...


class HTTPUploadTransport:
    """POST ``{backend}/api/v1/uploads`` with the terminal id header (urllib, standard library).

    Status handling: 2xx returns the body (the ack); 408, 425, 429 and 5xx are retryable; any
    other 4xx returns the body when it is an ack (a ``rejected`` one, typically) and otherwise
    raises a non-retryable error. Network errors and timeouts are retryable.
    """

    def __init__(
        self,
        backend_url: str,
        terminal_id: str,
        *,
        timeout_s: float = 10.0,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        """Configure the transport.

        Args:
            backend_url: base URL, ``https://backend.example`` (no trailing path).
            terminal_id: sent in the ``X-Regioncard-Terminal`` header.
            timeout_s: socket timeout of one request.
            opener: a urllib opener (client certificate, proxy); the default one otherwise.
        """
        self.url = backend_url.rstrip("/") + UPLOAD_PATH
        self.terminal_id = terminal_id
        self.timeout_s = timeout_s
        self._opener = opener or urllib.request.build_opener()

    def send(self, batch_bytes: bytes) -> bytes:
        """POST the batch; see the class docstring for the status handling."""
        request = urllib.request.Request(
            self.url,
            data=batch_bytes,
            method="POST",
            headers={"Content-Type": "application/json", TERMINAL_HEADER: self.terminal_id},
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            body = exc.read() or b""
            retryable = exc.code >= 500 or exc.code in (408, 425, 429)
            if not retryable and _is_ack(body):
                return body
            raise UploadTransportError(
                f"backend answered HTTP {exc.code} to {self.url}", retryable=retryable
            ) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise UploadTransportError(f"cannot reach {self.url}: {exc}", retryable=True) from exc


def _is_ack(body: bytes) -> bool:
    try:
        Ack.decode(body)
    except BatchFormatError:
        return False
    return True


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter (delay drawn in ``[0, cap]``).

    Attributes:
        max_attempts: sends of one batch per :meth:`UploadQueue.upload` call.
        base_delay_s: cap of the first wait; the cap doubles at each attempt.
        max_delay_s: the cap never grows beyond this.
    """

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Wait after the ``attempt``-th failed send (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(0.0, cap)


@dataclass
class UploadReport:
    """What one :meth:`UploadQueue.upload` call did.

    Attributes:
        acked: batch ids acknowledged during the call, in order.
        records_acked: records in those batches.
        attempts: sends made, failed ones included.
        failed_batch: the batch that could not be delivered (later ones were not tried).
        error: why, for the logs and the supervision screen.
    """

    acked: list[str] = field(default_factory=list)
    records_acked: int = 0
    attempts: int = 0
    failed_batch: str | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        """``True`` when every stored batch was acknowledged."""
        return self.failed_batch is None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UploadQueue:
    """Builds, stores, signs and sends batches of decided records; safe to call repeatedly.

    Run it from the terminal's upload thread with its own ``Journal.open(..., owner=False)``
    handle: the gate never waits for the network.
    """

    def __init__(
        self,
        journal: Journal,
        transport: UploadTransport,
        signing_key: Ed25519PrivateKey,
        *,
        max_records: int = 500,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Wire the queue.

        Args:
            journal: the journal to read records from and keep the outbox in.
            transport: how batches reach the backend.
            signing_key: the terminal's Ed25519 device key (the backend holds its public key).
            max_records: largest batch.
            retry: backoff policy; the default waits at most about a minute between attempts.
            sleep: how to wait between attempts (tests pass a recorder).
            rng: jitter source.
            clock: batch ``created_at`` source (UTC).
        """
        if max_records < 1:
            raise JournalError("a batch holds at least one record")
        self.journal = journal
        self.transport = transport
        self._key = signing_key
        self.max_records = max_records
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock

    def prepare_batches(self) -> list[StoredBatch]:
        """Group every decided, unbatched record into signed batches stored in the outbox.

        Returns:
            The batches created by this call.
        """
        created: list[StoredBatch] = []
        while records := self.journal.unbatched(self.max_records):
            uncertain = tuple(UncertainRef.of(r) for r in self.journal.undecided())
            batch = Batch(self.journal.terminal_id, self._clock(), tuple(records), uncertain)
            body = sign_batch(batch, self._key)
            created.append(
                self.journal.store_batch(
                    batch.batch_id, [r.seq for r in records], body, batch.created_at
                )
            )
            log.info(
                "batch %s built: %d records, %d uncertain",
                batch.batch_id,
                len(records),
                len(uncertain),
            )
        return created

    def upload(self) -> UploadReport:
        """Prepare batches, then send every unacknowledged one in order, with bounded retries.

        Stops at the first batch that cannot be delivered, so batches arrive in order; the next
        call starts again from it with the same bytes.
        """
        self.prepare_batches()
        report = UploadReport()
        for stored in self.journal.unacked_batches():
            error = self._deliver(stored, report)
            if error is not None:
                report.failed_batch = stored.batch_id
                report.error = error
                log.warning("batch %s not delivered: %s", stored.batch_id, error)
                break
            report.acked.append(stored.batch_id)
            report.records_acked += stored.record_count
        return report

    def _deliver(self, stored: StoredBatch, report: UploadReport) -> str | None:
        """Send one batch until acknowledged or out of attempts; the error text, or None."""
        error = "not sent"
        for attempt in range(1, self.retry.max_attempts + 1):
            report.attempts += 1
            try:
                ack = Ack.decode(self.transport.send(stored.body))
            except UploadTransportError as exc:
                error = str(exc)
                if not exc.retryable:
                    return error
            except BatchFormatError as exc:
                error = f"unreadable acknowledgement: {exc}"
            else:
                if ack.batch_id != stored.batch_id:
                    error = f"acknowledgement names {ack.batch_id!r}, not {stored.batch_id!r}"
                elif ack.status is AckStatus.REJECTED:
                    return f"backend rejected the batch: {ack.detail or 'no reason given'}"
                else:
                    self.journal.mark_batch_acked(stored.batch_id, ack.encode())
                    return None
            if attempt < self.retry.max_attempts:
                delay = self.retry.delay(attempt, self._rng)
                log.info(
                    "batch %s attempt %d failed (%s); retry in %.2f s",
                    stored.batch_id,
                    attempt,
                    error,
                    delay,
                )
                self._sleep(delay)
        return error
