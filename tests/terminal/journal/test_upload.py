"""The upload queue: batches in order, retries with backoff, idempotent re-sends; fake and HTTP."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from card_schema.uploads.batch import Ack, AckStatus, verify_batch
from card_schema.uploads.records import TransactionIntent
from terminal.journal.errors import UploadTransportError
from terminal.journal.store import Journal
from terminal.journal.upload import (
    TERMINAL_HEADER,
    UPLOAD_PATH,
    HTTPUploadTransport,
    RetryPolicy,
    UploadQueue,
)

MakeIntent = Callable[..., TransactionIntent]
SIG = b"\x5a" * 16


class FakeBackend:
    """In-process backend: verifies, deduplicates on batch id, fails on command."""

    def __init__(self, key: Ed25519PrivateKey, failures: list[Exception | bytes] | None = None):
        self.public_key = key.public_key()
        self.failures = list(failures or [])
        self.received: list[bytes] = []
        self.stored: dict[str, bytes] = {}

    def send(self, batch_bytes: bytes) -> bytes:
        self.received.append(batch_bytes)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        batch = verify_batch(batch_bytes, self.public_key)
        if batch.batch_id in self.stored:
            assert self.stored[batch.batch_id] == batch_bytes
            return Ack(batch.batch_id, AckStatus.DUPLICATE).encode()
        self.stored[batch.batch_id] = batch_bytes
        return Ack(batch.batch_id, AckStatus.ACCEPTED).encode()


def _fill(journal: Journal, make_intent: MakeIntent, count: int) -> list[int]:
    seqs = []
    for n in range(count):
        seq = journal.begin(make_intent(card_tx_counter=n))
        journal.commit(seq, SIG)
        seqs.append(seq)
    return seqs


def _queue(
    journal: Journal, transport: object, key: Ed25519PrivateKey, **kw: object
) -> UploadQueue:
    sleeps: list[float] = []
    queue = UploadQueue(
        journal,
        transport,  # type: ignore[arg-type]
        key,
        rng=random.Random(4),
        sleep=sleeps.append,
        **kw,  # type: ignore[arg-type]
    )
    queue.sleeps = sleeps  # type: ignore[attr-defined]
    return queue


def test_batches_of_at_most_n_in_sequence_order(
    journal: Journal, make_intent: MakeIntent, device_key: Ed25519PrivateKey
) -> None:
    _fill(journal, make_intent, 5)
    backend = FakeBackend(device_key)
    report = _queue(journal, backend, device_key, max_records=2).upload()
    assert report.complete and report.records_acked == 5
    assert report.acked == [
        "CANTINE-59-0007:1-2",
        "CANTINE-59-0007:3-4",
        "CANTINE-59-0007:5-5",
    ]
    assert list(backend.stored) == report.acked
    assert journal.unuploaded_count() == 0
    assert _queue(journal, backend, device_key).upload().acked == [], "nothing left to send"


def test_uncertain_and_aborted_records(
    journal: Journal, make_intent: MakeIntent, device_key: Ed25519PrivateKey
) -> None:
    refused = journal.begin(make_intent(card_tx_counter=1))
    journal.abort(refused, "6985")
    lost = journal.begin(make_intent(card_tx_counter=2))
    journal.mark_uncertain(lost)
    open_now = journal.begin(make_intent(card_tx_counter=3))
    done = journal.begin(make_intent(card_tx_counter=4))
    journal.commit(done, SIG)
    backend = FakeBackend(device_key)
    assert _queue(journal, backend, device_key).upload().complete
    [body] = backend.stored.values()
    batch = verify_batch(body, device_key.public_key())
    assert [r.seq for r in batch.records] == [refused, done]
    assert [u.terminal_seq for u in batch.uncertain] == [lost, open_now]
    assert journal.unuploaded_count() == 0


def test_failing_transport_then_recovering_sends_the_same_bytes(
    journal: Journal, make_intent: MakeIntent, device_key: Ed25519PrivateKey
) -> None:
    _fill(journal, make_intent, 3)
    down = UploadTransportError("network down", retryable=True)
    backend = FakeBackend(device_key, [down, down, b"garbage", down])
    queue = _queue(journal, backend, device_key, retry=RetryPolicy(max_attempts=3))
    first = queue.upload()
    assert not first.complete and first.attempts == 3
    assert first.failed_batch == "CANTINE-59-0007:1-3"
    assert journal.unuploaded_count() == 3, "nothing is marked uploaded without an ack"
    # Backoff: bounded, jittered, one wait between attempts.
    assert len(queue.sleeps) == 2  # type: ignore[attr-defined]
    assert all(0 <= d <= 0.5 * 2**i for i, d in enumerate(queue.sleeps))  # type: ignore[attr-defined]
    # More records arrive meanwhile; the stuck batch keeps its bytes, the new one follows.
    _fill_more = journal.begin(make_intent(card_tx_counter=99))
    journal.commit(_fill_more, SIG)
    second = queue.upload()
    assert second.complete and second.acked == ["CANTINE-59-0007:1-3", "CANTINE-59-0007:4-4"]
    assert len(set(backend.received[:5])) == 1, "every re-send of 1-3 is the same bytes"
    assert journal.unuploaded_count() == 0


def test_a_lost_ack_is_a_duplicate_not_a_second_batch(
    journal: Journal, make_intent: MakeIntent, device_key: Ed25519PrivateKey
) -> None:
    _fill(journal, make_intent, 2)

    class LosesFirstAck(FakeBackend):
        lost = False

        def send(self, batch_bytes: bytes) -> bytes:
            ack = super().send(batch_bytes)
            if not self.lost:
                self.lost = True
                raise UploadTransportError("connection reset after the request", retryable=True)
            return ack

    backend = LosesFirstAck(device_key)
    report = _queue(journal, backend, device_key).upload()
    assert report.complete and report.attempts == 2
    assert backend.received[0] == backend.received[1]
    assert len(backend.stored) == 1


def test_ack_for_another_batch_is_not_trusted(
    journal: Journal, make_intent: MakeIntent, device_key: Ed25519PrivateKey
) -> None:
    _fill(journal, make_intent, 1)
    wrong = Ack("CANTINE-59-0007:9-9", AckStatus.ACCEPTED).encode()
    backend = FakeBackend(device_key, [wrong])
    report = _queue(journal, backend, device_key).upload()
    assert report.complete and report.attempts == 2


def test_rejection_and_permanent_errors_stop_without_losing_anything(
    journal: Journal, make_intent: MakeIntent, device_key: Ed25519PrivateKey
) -> None:
    _fill(journal, make_intent, 1)
    rejected = Ack("CANTINE-59-0007:1-1", AckStatus.REJECTED, "unknown terminal key").encode()
    forbidden = UploadTransportError("HTTP 403", retryable=False)
    backend = FakeBackend(device_key, [rejected, forbidden])
    queue = _queue(journal, backend, device_key)
    report = queue.upload()
    assert report.attempts == 1 and report.error and "unknown terminal key" in report.error
    report = queue.upload()
    assert report.attempts == 1 and report.error == "HTTP 403"
    assert journal.unuploaded_count() == 1
    assert queue.upload().complete


def test_retry_policy_caps() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=8.0)
    rng = random.Random(0)
    for attempt in range(1, 10):
        for _ in range(50):
            assert 0.0 <= policy.delay(attempt, rng) <= min(8.0, 2 ** (attempt - 1))


# -- against a real HTTP server on 127.0.0.1 -------------------------------------------------


class _Backend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, key: Ed25519PrivateKey) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.public_key = key.public_key()
        self.fail_next = 0
        self.stored: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None, bytes]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Backend

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get(TERMINAL_HEADER), body))
            if self.path != UPLOAD_PATH:
                self._answer(404, b"no such endpoint")
                return
            if self.server.fail_next:
                self.server.fail_next -= 1
                self._answer(503, b"busy")
                return
            try:
                batch = verify_batch(body, self.server.public_key)
            except Exception as exc:
                # The id is read unverified from the body, only to name the batch refused.
                claimed = json.loads(body)["batch"]["batch_id"]
                self._answer(422, Ack(claimed, AckStatus.REJECTED, str(exc)).encode())
                return
            status = (
                AckStatus.DUPLICATE if batch.batch_id in self.server.stored else AckStatus.ACCEPTED
            )
            self.server.stored.setdefault(batch.batch_id, body)
            self._answer(200, Ack(batch.batch_id, status).encode())

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_backend(device_key: Ed25519PrivateKey) -> Iterator[_Backend]:
    server = _Backend(device_key)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _url(server: _Backend) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def test_http_upload_with_a_503_then_success(
    journal: Journal,
    make_intent: MakeIntent,
    device_key: Ed25519PrivateKey,
    http_backend: _Backend,
) -> None:
    _fill(journal, make_intent, 3)
    http_backend.fail_next = 2
    transport = HTTPUploadTransport(_url(http_backend) + "/", journal.terminal_id, timeout_s=10)
    report = _queue(journal, transport, device_key, max_records=2).upload()
    assert report.complete and report.attempts == 4
    assert list(http_backend.stored) == ["CANTINE-59-0007:1-2", "CANTINE-59-0007:3-3"]
    paths = {(path, terminal) for path, terminal, _ in http_backend.requests}
    assert paths == {(UPLOAD_PATH, "CANTINE-59-0007")}
    first_three = [body for _, _, body in http_backend.requests[:3]]
    assert len(set(first_three)) == 1, "the retried batch is the same bytes"
    assert journal.unuploaded_count() == 0


def test_http_resend_after_a_crash_is_acknowledged_as_duplicate(
    journal_path: Path,
    journal: Journal,
    make_intent: MakeIntent,
    device_key: Ed25519PrivateKey,
    http_backend: _Backend,
) -> None:
    _fill(journal, make_intent, 2)
    transport = HTTPUploadTransport(_url(http_backend), journal.terminal_id)
    queue = _queue(journal, transport, device_key)
    [stored] = queue.prepare_batches()
    # The batch reached the backend but the terminal died before recording the ack.
    assert Ack.decode(transport.send(stored.body)).status is AckStatus.ACCEPTED
    with Journal.open(journal_path, journal.terminal_id, owner=False) as uploader:
        report = _queue(uploader, transport, device_key).upload()
    assert report.complete and report.acked == [stored.batch_id]
    assert len(http_backend.stored) == 1 and len(http_backend.requests) == 2


def test_http_rejection_body_is_an_ack(
    journal: Journal, make_intent: MakeIntent, http_backend: _Backend
) -> None:
    _fill(journal, make_intent, 1)
    stranger = Ed25519PrivateKey.from_private_bytes(bytes(32))
    transport = HTTPUploadTransport(_url(http_backend), journal.terminal_id)
    report = _queue(journal, transport, stranger).upload()
    assert report.attempts == 1 and report.error and "rejected" in report.error
    assert journal.unuploaded_count() == 1


def test_http_backend_down_is_retryable(http_backend: _Backend) -> None:
    url = _url(http_backend)
    http_backend.shutdown()
    http_backend.server_close()
    with pytest.raises(UploadTransportError) as info:
        HTTPUploadTransport(url, "T-1", timeout_s=5).send(b"{}")
    assert info.value.retryable


def test_http_non_ack_4xx_is_permanent(http_backend: _Backend) -> None:
    transport = HTTPUploadTransport(_url(http_backend) + "/wrong-prefix", "T-1", timeout_s=5)
    with pytest.raises(UploadTransportError, match="HTTP 404") as info:
        transport.send(b"{}")
    assert not info.value.retryable
