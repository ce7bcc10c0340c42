"""Stored upload batches: the batch rows (idempotency, order) and the raw signed bytes, kept as
received until 48 hours after the validation loop processed them (privacy: they carry serials)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base

# 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class UploadBatch(Base):
    """One accepted batch, exactly as the terminal sent it.

    Attributes:
        id: arrival order; the validation loop processes batches in this order.
        batch_id: ``<terminal_id>:<first_seq>-<last_seq>``, unique: a re-send is recognised by it.
        terminal_id: the sending terminal.
        body_sha256: hex digest of ``body``, to compare a re-send cheaply.
        record_count: records in the batch (the loop sizes its chunks with it).
        received_at: when it was stored (the ack was sent after this commit).
        processed_at: when the validation loop processed it; ``None`` while pending.
    """

    __tablename__ = "upload_batches"
    __table_args__ = (Index("ix_upload_batches_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(160), unique=True)
    terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    record_count: Mapped[int]
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UploadBody(Base):
    """The bytes of one accepted batch, and the upload worker's preparation of its records.

    Kept apart from :class:`UploadBatch` so that marking a batch processed updates a small row
    instead of rewriting hundreds of kilobytes.

    Attributes:
        batch_row: the :class:`UploadBatch` row (written in the same transaction; no foreign
            key, see migration 0005).
        body: the wire bytes, exactly as the terminal sent them (canonical JSON, Ed25519-signed
            by the terminal); they carry card serials, so the privacy purge deletes the row 48
            hours after the batch was processed (``purge_batch_bodies``).
        prepared: per record the signing digest, the SAM signature check and the card
            pseudonym (``backend/validation/prepare.py``), or ``None`` when the validation loop
            is to prepare the batch itself.
    """

    __tablename__ = "upload_bodies"

    batch_row: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=False)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    prepared: Mapped[bytes | None] = mapped_column(LargeBinary)
