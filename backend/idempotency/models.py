"""One row per idempotency key used by a caller: the request it named and the answer it got."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, utcnow
from backend.db import Base


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a caller sent, with the answer to replay.

    Attributes:
        caller: ``agent:<user name>`` or ``terminal:<terminal id>`` (keys are per caller).
        key: the header's value.
        endpoint: method and path template the key was used on.
        request_sha256: digest of the canonical request body: the same key with another body
            is a 409, never a silent replay of a different sale.
        status_code: the answer's status.
        response: the answer's JSON body.
    """

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
