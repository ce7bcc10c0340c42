"""Receiving one upload batch: verify it, store it durably, answer the acknowledgement.

No FastAPI here (the router adapts it). The order follows ``docs/batch-format.md``: size, the
terminal key named by ``signature.key_id`` for the authenticated terminal, the signature and
strict canonical decoding (:func:`card_schema.uploads.batch.verify_batch_summary`: the checks of
``verify_batch`` without building records nobody here reads), the body's terminal
against the caller, then ONE transaction storing the batch row (``upload_batches``) and its raw
bytes with the upload worker's preparation of its records (``upload_bodies``). The ack
goes out only after that commit (SQLite ``synchronous=FULL``, PostgreSQL ``fsync``): an
``accepted`` batch is durable. Records are processed later by the validation loop.

Idempotency: ``batch_id`` is unique. The same bytes again -> ``duplicate`` (nothing changes);
two copies at once -> one insert wins, the other hits the unique constraint and is answered
``duplicate``; other bytes under a stored ``batch_id`` -> ``rejected`` and a ``batch_conflict``
anomaly.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.columns import utcnow
from backend.uploads.models import UploadBatch, UploadBody
from backend.validation.models import Anomaly
from card_schema.errors import RegionCardError, VerificationError
from card_schema.uploads.batch import (
    Ack,
    AckStatus,
    BatchSummary,
    strict_json_loads,
    verify_batch_summary,
)
from card_schema.uploads.errors import BatchFormatError, BatchSignatureError

_log = logging.getLogger(__name__)

# The envelope is canonical JSON, so its last member is the small signature object.
_SIGNATURE_TAIL = re.compile(rb'"signature":(\{[^{}]{0,400}\})\}\Z')

KeyLookup = Callable[[Session, str, str], Ed25519PublicKey]


@dataclass(frozen=True)
class UploadOutcome:
    """The answer to one upload.

    Attributes:
        ack: the ``regioncard.ack/1`` body.
        status_code: HTTP status (200 accepted or duplicate; 4xx rejected).
        batch: what was verified of the batch (terminal, id, sequences, record count); the
            records themselves are read again from the stored bytes by the validation loop.
    """

    ack: Ack
    status_code: int
    batch: BatchSummary | None = None


def _rejected(batch_id: str, status_code: int, detail: str) -> UploadOutcome:
    return UploadOutcome(Ack(batch_id, AckStatus.REJECTED, detail), status_code)


def _key_id_of(body: bytes) -> str:
    """The ``signature.key_id`` of a canonical envelope, read without parsing the whole body.

    Raises:
        BatchFormatError: no signature object where a canonical envelope has it.
    """
    # The tail is at most 415 bytes: searching only the end finds the same match, if any.
    match = _SIGNATURE_TAIL.search(body, max(0, len(body) - 512))
    if match is None:
        raise BatchFormatError(
            'not a canonical batch envelope: {"batch":{...},"signature":{...}} expected'
        )
    signature = strict_json_loads(match.group(1))
    key_id = signature.get("key_id") if isinstance(signature, dict) else None
    if not isinstance(key_id, str):
        raise BatchFormatError("signature.key_id: expected a string")
    return key_id


def receive_batch(
    factory: sessionmaker[Session],
    terminal_id: str,
    body: bytes,
    key_lookup: KeyLookup,
    *,
    max_bytes: int,
    max_records: int,
    prepare: Callable[[bytes], bytes] | None = None,
) -> UploadOutcome:
    """Verify and store one batch sent by the authenticated terminal ``terminal_id``.

    Args:
        factory: session factory (the service commits its own short transactions).
        terminal_id: the authenticated caller (``X-Regioncard-Terminal``).
        body: the request body, as received.
        key_lookup: ``(session, terminal_id, key_id) -> public key``; raises a
            :class:`~card_schema.errors.VerificationError` for an unknown or revoked key
            (``backend.terminals.service.terminal_public_key``).
        max_bytes: largest batch accepted.
        max_records: most records in one batch.
        prepare: the upload worker's preparation of a verified batch's records
            (``RecordPreparer.prepare_body``: signing digests, SAM signature checks, card
            pseudonyms), stored beside the bytes so that the validation loop only reads it;
            ``None`` leaves it to the loop.

    Returns:
        The outcome; never raises for a bad batch (the terminal needs an ack to stop on).
    """
    if len(body) > max_bytes:
        return _rejected("", 413, f"batch larger than {max_bytes} bytes")
    try:
        key_id = _key_id_of(body)
        with factory() as session:
            public_key = key_lookup(session, terminal_id, key_id)
        batch = verify_batch_summary(body, public_key)
    except BatchSignatureError as exc:
        return _rejected("", 403, f"signature: {exc}")
    except VerificationError as exc:  # unknown or revoked terminal key
        return _rejected("", 403, str(exc))
    except RegionCardError as exc:  # BatchFormatError and any codec refusal
        return _rejected("", 400, f"malformed batch: {exc}")
    if batch.terminal_id != terminal_id:
        return _rejected(
            batch.batch_id,
            403,
            f"batch of terminal {batch.terminal_id} sent by terminal {terminal_id}",
        )
    if batch.record_count > max_records:
        return _rejected(batch.batch_id, 413, f"more than {max_records} records in one batch")
    return _store(factory, batch, body, prepare)


def _stored_digest(factory: sessionmaker[Session], batch_id: str) -> str | None:
    with factory() as session:
        return session.scalar(
            select(UploadBatch.body_sha256).where(UploadBatch.batch_id == batch_id)
        )


def _prepared(prepare: Callable[[bytes], bytes] | None, batch_id: str, body: bytes) -> bytes | None:
    """The upload worker's preparation of the records, or ``None`` to leave it to the loop.

    The preparation only saves the loop work: when it fails (a key the HSM cannot give right
    now, say), the batch is still stored and acknowledged, and the loop prepares it itself.
    """
    if prepare is None:
        return None
    try:
        return prepare(body)
    except Exception:  # whatever it is, the batch must not be lost for it
        _log.warning("batch %s stored without its preparation", batch_id, exc_info=True)
        return None


_SQLITE_WRITERS: dict[int, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


def _one_writer(factory: sessionmaker[Session]) -> AbstractContextManager[object]:
    """On SQLite, the upload threads of a process take turns at the write transaction.

    SQLite has one writer at a time; a thread that finds the lock taken sleeps in SQLite's
    busy handler (1 ms, then longer, up to 100 ms per try) while the lock may already be free:
    with tens of uploads at once that sleeping made the ack latency. A lock of the process
    hands the turn over at once; the busy handler still covers other processes (the loop).
    """
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        return nullcontext()
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(id(bind), threading.Lock())


def _store(
    factory: sessionmaker[Session],
    batch: BatchSummary,
    body: bytes,
    prepare: Callable[[bytes], bytes] | None,
) -> UploadOutcome:
    digest = hashlib.sha256(body).hexdigest()
    batch_id = batch.batch_id
    stored = _stored_digest(factory, batch_id)
    if stored is None:
        prepared = _prepared(prepare, batch_id, body)  # outside the write transaction
        try:
            with _one_writer(factory), factory() as session, session.begin():
                row_id = session.execute(
                    insert(UploadBatch)
                    .values(
                        batch_id=batch_id,
                        terminal_id=batch.terminal_id,
                        body_sha256=digest,
                        record_count=batch.record_count,
                        received_at=utcnow(),
                    )
                    .returning(UploadBatch.id)
                ).scalar_one()
                session.execute(
                    insert(UploadBody).values(batch_row=row_id, body=body, prepared=prepared)
                )
            return UploadOutcome(Ack(batch_id, AckStatus.ACCEPTED), 200, batch)
        except IntegrityError:
            # Another copy was stored first (unique batch_id): compare with it.
            stored = _stored_digest(factory, batch_id)
    if stored == digest:
        return UploadOutcome(Ack(batch_id, AckStatus.DUPLICATE, "already stored"), 200, batch)
    with factory() as session, session.begin():
        session.execute(
            insert(Anomaly).values(
                kind="batch_conflict",
                terminal_id=batch.terminal_id,
                batch_id=batch_id,
                detail="a stored batch has this id with other bytes",
                detected_at=utcnow(),
            )
        )
    return _rejected(batch_id, 409, "another batch with this id and other content is stored")
