"""Upload a terminal's journal to the backend from a background thread (gate, canteen till).

:class:`JournalUploader` runs the journal's :class:`~terminal.journal.upload.UploadQueue` over
:class:`~terminal.journal.upload.HTTPUploadTransport` in a daemon thread with its own
``Journal.open(..., owner=False)`` handle: the transaction thread (the gate's barrier, the
till's screen) never waits for the network. Each round builds the signed batches of the decided
records, stores them in the journal's outbox and sends them; a failure is logged and the next
round (sooner than the normal interval) sends the same bytes again, so nothing is lost and
nothing is counted twice (``docs/journal.md``, "Uploads").

Rounds run every ``interval_s`` seconds, and at once when :meth:`JournalUploader.wake` is called
(after a card session; it only sets an event). :meth:`JournalUploader.stop` interrupts a backoff
wait, joins the thread, and with ``flush=True`` tries one last single-attempt round.

The helpers :func:`bearer_opener`, :func:`load_device_key` and :func:`read_credential` are the
pieces every terminal CLI needs (the desk station uses them too).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from card_schema.errors import RegionCardError
from terminal.journal.store import Journal
from terminal.journal.upload import HTTPUploadTransport, RetryPolicy, UploadQueue, UploadReport

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60.0  # a round every minute when idle
DEFAULT_RETRY_S = 30.0  # after a failed round, try again sooner (capped by the interval)
# Inside one background round: a few quick attempts, then the round ends and the thread waits.
BACKGROUND_RETRY = RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=10.0)


def bearer_opener(credential: str) -> urllib.request.OpenerDirector:
    """A urllib opener sending the terminal's ``rct_...`` credential with every upload."""
    opener = urllib.request.build_opener()
    opener.addheaders = [("Authorization", f"Bearer {credential}")]
    return opener


def upload_queue(
    journal: Journal,
    backend_url: str,
    credential: str,
    device_key: Ed25519PrivateKey,
    *,
    timeout_s: float = 10.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> UploadQueue:
    """The upload queue of ``journal`` to ``{backend_url}/api/v1/uploads``.

    Args:
        journal: the terminal's journal (its ``terminal_id`` is the sender).
        backend_url: backend root URL.
        credential: the terminal's ``rct_...`` credential (bearer).
        device_key: the terminal's Ed25519 device key (its public key registered with it).
        timeout_s: socket timeout of one request.
        retry: backoff inside one upload call (the queue's default otherwise).
        sleep: how the queue waits between attempts.

    Returns:
        A queue whose ``upload()`` builds, signs, stores and sends the batches.
    """
    transport = HTTPUploadTransport(
        backend_url, journal.terminal_id, timeout_s=timeout_s, opener=bearer_opener(credential)
    )
    return UploadQueue(journal, transport, device_key, retry=retry, sleep=sleep)


def load_device_key(path: Path) -> Ed25519PrivateKey:
    """A terminal's device key from a PEM (PKCS#8, unencrypted) file.

    Raises:
        RegionCardError: unreadable, or not an Ed25519 private key.
    """
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise RegionCardError(f"clé d'envoi illisible : {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise RegionCardError("--upload-key : pas une clé privée Ed25519")
    return key


def read_credential(path: Path) -> str:
    """The terminal's ``rct_...`` credential from its file (surrounding blanks removed).

    Raises:
        RegionCardError: the file cannot be read or is empty.
    """
    try:
        credential = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RegionCardError(f"identifiant du terminal illisible : {exc}") from exc
    if not credential:
        raise RegionCardError(f"identifiant du terminal vide : {path}")
    return credential


class _Stopped(Exception):
    """Raised inside a round's backoff wait when :meth:`JournalUploader.stop` was called."""


class JournalUploader:
    """Uploads one terminal's journal in a background thread; never blocks the caller.

    Thread-safe: rounds are serialised by a lock; :meth:`wake` and :meth:`stop` may be called
    from any thread. Each round opens its own non-owner journal handle (SQLite handles belong to
    one thread) and closes it at the end.

    Attributes:
        started: :meth:`start` was called.
        rounds: rounds run so far.
        failed_rounds: consecutive rounds that did not deliver everything (0 after a success).
        last_report: the last round's report (``None`` before the first, or after a round that
            failed before sending, e.g. an unreadable journal).
    """

    def __init__(
        self,
        journal_path: str | os.PathLike[str],
        terminal_id: str,
        backend_url: str,
        credential: str,
        device_key: Ed25519PrivateKey,
        interval: float = DEFAULT_INTERVAL_S,
        *,
        retry_s: float = DEFAULT_RETRY_S,
        timeout_s: float = 10.0,
        retry: RetryPolicy = BACKGROUND_RETRY,
    ) -> None:
        """Configure the uploader (nothing runs before :meth:`start` or :meth:`upload_now`).

        Args:
            journal_path: the journal file the transaction thread owns.
            terminal_id: the terminal id (``X-Regioncard-Terminal``; the journal's).
            backend_url: backend root URL.
            credential: the terminal's ``rct_...`` credential.
            device_key: the terminal's Ed25519 device key, registered with the terminal.
            interval: seconds between two rounds that delivered everything.
            retry_s: seconds before the next round after one that did not (at most
                ``interval``).
            timeout_s: socket timeout of one request.
            retry: backoff between the attempts of one round.

        Raises:
            ValueError: ``interval`` or ``retry_s`` is not positive.
        """
        if interval <= 0 or retry_s <= 0:
            raise ValueError("upload intervals must be positive")
        self.journal_path = Path(journal_path)
        self.terminal_id = terminal_id
        self.backend_url = backend_url
        self.interval = interval
        self.retry_s = min(retry_s, interval)
        self.timeout_s = timeout_s
        self.retry = retry
        self._credential = credential
        self._key = device_key
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = False
        self.rounds = 0
        self.failed_rounds = 0
        self.last_report: UploadReport | None = None

    def __repr__(self) -> str:
        return f"JournalUploader({self.terminal_id!r}, {self.backend_url!r})"  # no credential

    # -- one round ----------------------------------------------------------------------------

    def upload_now(self, retry: RetryPolicy | None = None) -> UploadReport | None:
        """Run one round in the calling thread (waits for a round in progress first).

        Failures are logged and counted, never raised: the batches stay in the outbox and the
        next round sends them again byte for byte.

        Args:
            retry: backoff of this round (the uploader's otherwise).

        Returns:
            What the round did; ``None`` when it failed before sending (journal unreadable,
            or :meth:`stop` called during a backoff wait).
        """
        with self._lock:
            report: UploadReport | None = None
            try:
                with Journal.open(self.journal_path, self.terminal_id, owner=False) as journal:
                    queue = upload_queue(
                        journal,
                        self.backend_url,
                        self._credential,
                        self._key,
                        timeout_s=self.timeout_s,
                        retry=retry or self.retry,
                        sleep=self._sleep,  # a backoff wait ends when stop() is called
                    )
                    report = queue.upload()
            except _Stopped:
                log.info("upload of %s interrupted by stop; resumed next time", self.terminal_id)
            except Exception:  # a bug or a broken journal must not stop the terminal
                log.exception("upload of %s failed", self.terminal_id)
            self.rounds += 1
            self.last_report = report
            if report is not None and report.complete:
                self.failed_rounds = 0
                if report.acked:
                    log.info(
                        "uploaded %d records in %d batches", report.records_acked, len(report.acked)
                    )
            else:
                self.failed_rounds += 1
                if report is not None:
                    log.warning(
                        "upload of %s: %s (retried later, records kept)",
                        self.terminal_id,
                        report.error,
                    )
            return report

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    # -- background rounds --------------------------------------------------------------------

    def start(self, *, immediately: bool = True) -> None:
        """Run rounds in a daemon thread until :meth:`stop` (again: does nothing while running).

        Args:
            immediately: run the first round at once (else after ``interval``, or a wake).
        """
        if self._thread is not None and self._thread.is_alive():
            return
        self.started = True
        self._stop.clear()
        if immediately:
            self._wake.set()
        self._thread = threading.Thread(
            target=self._run, name=f"upload-{self.terminal_id}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Ask for a round soon (after a card session); returns at once.

        After a failed round the thread still waits ``retry_s`` before trying again, so a busy
        gate with the backend down does not hammer it.
        """
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.failed_rounds:
                # Jittered (half to all of retry_s): gates that failed together (a 503 or 429
                # from a busy backend, an outage) do not all come back at the same moment.
                if self._stop.wait(self.retry_s * random.uniform(0.5, 1.0)):
                    break
            else:
                self._wake.wait(self.interval)
            if self._stop.is_set():
                break
            self._wake.clear()
            self.upload_now()

    def stop(self, *, flush: bool = False, timeout_s: float = 15.0) -> UploadReport | None:
        """Stop the rounds; with ``flush``, then try one last round (one attempt per batch).

        Args:
            flush: if :meth:`start` was called, send what is left once more, in the calling
                thread (a round still blocked on the network after ``timeout_s`` is left alone
                instead).
            timeout_s: how long to wait for a round in progress.

        Returns:
            The last round's report when ``flush`` ran, else ``None``.
        """
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("upload thread of %s still busy; not flushed", self.terminal_id)
                return None
        if not flush or not self.started:
            return None
        self._stop.clear()  # the flush round has no backoff to interrupt (one attempt)
        try:
            return self.upload_now(RetryPolicy(max_attempts=1))
        finally:
            self._stop.set()


def add_upload_options(parser: argparse.ArgumentParser, device: str) -> None:
    """The ``--upload-key`` and ``--upload-minutes`` options of a terminal command.

    Args:
        parser: the terminal's subcommand parser (it has ``--backend``/``--credential-file``).
        device: how the help names the device ("gate", "till").
    """
    parser.add_argument(
        "--upload-key",
        type=Path,
        metavar="PEM",
        help=f"clé Ed25519 du terminal ({device}, PEM) : envoyer le journal à --backend",
    )
    parser.add_argument(
        "--upload-minutes", type=float, default=1.0, help="minutes entre deux envois au repos"
    )


def uploader_from_options(
    journal_path: str | os.PathLike[str],
    terminal_id: str,
    *,
    backend_url: str | None,
    credential_file: Path | None,
    upload_key: Path | None,
    interval: float = DEFAULT_INTERVAL_S,
) -> JournalUploader | None:
    """The uploader a terminal CLI asks for with ``--backend`` and ``--upload-key``.

    Checks the options before any reader or journal is opened. Without an upload key the
    records stay in the journal and a warning says so (``None`` is returned).

    Args:
        journal_path: the terminal's journal file.
        terminal_id: the terminal id.
        backend_url: ``--backend``.
        credential_file: ``--credential-file`` (the ``rct_...`` credential).
        upload_key: ``--upload-key`` (PEM, the device key).
        interval: seconds between two rounds when idle.

    Raises:
        RegionCardError: ``--upload-key`` without ``--backend``, ``--backend`` without
            ``--credential-file``, a non-positive interval, or an unreadable key or credential.
    """
    if upload_key is not None and not backend_url:
        raise RegionCardError("--upload-key needs --backend (the backend to upload the journal to)")
    if backend_url and credential_file is None:
        raise RegionCardError("--backend needs --credential-file (the terminal credential)")
    if interval <= 0:
        raise RegionCardError("--upload-minutes must be positive")
    if upload_key is None or not backend_url or credential_file is None:
        log.warning("no --upload-key: the journal is kept in %s, not uploaded", journal_path)
        return None
    return JournalUploader(
        journal_path,
        terminal_id,
        backend_url,
        read_credential(credential_file),
        load_device_key(upload_key),
        interval,
    )
