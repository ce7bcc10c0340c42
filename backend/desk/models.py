"""Desk jobs: one card to write at one desk, followed by the page, written by the desk station."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.columns import UTCDateTime, str_enum, utcnow
from backend.db import Base


class JobKind(StrEnum):
    """What the job does to a card."""

    ISSUE = "issue"  # a blank card, personalised for a holder (or anonymous)
    UPDATE = "update"  # loads, applications added or removed, on a card already issued
    REPLACE = "replace"  # a blank card replacing a blocked one (its balances and contracts move)


class JobStatus(StrEnum):
    """Life cycle of a desk job (docs/desk.md)."""

    QUEUED = "queued"  # created by the agent, not taken by the station yet
    WAITING_CARD = "waiting_card"  # taken by the station, no card on the reader yet
    WRITING = "writing"  # steps being written
    INTERRUPTED = "interrupted"  # card pulled: resumes from the first step not done
    DONE = "done"  # every step on the card
    FAILED = "failed"  # stopped for good (message says why)


FINAL_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED})


class DeskJob(Base):
    """One card to write at a desk.

    Attributes:
        desk_terminal_id: the desk station that writes it (a terminal of kind ``desk``).
        holder_id: the holder (an anonymous holder for an anonymous card).
        card_serial: the card, once on the reader (from the start for an update).
        replaces_serial: the blocked card a ``replace`` job replaces.
        request: canonical JSON of what the agent asked for (applications, loads).
        plan: canonical JSON of the plan made when the card was first put on the reader
            (wrapped keys, steps); kept so a resumed job writes exactly the same content.
        steps_done: JSON list of the ids of the steps on the card.
        current_step: the step being written.
        message: what the page shows (French).
        summary: JSON for the receipt: applications, loads and amounts.
    """

    __tablename__ = "desk_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    desk_terminal_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[JobKind] = mapped_column(str_enum(JobKind))
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    card_serial: Mapped[str | None] = mapped_column(String(32))
    replaces_serial: Mapped[str | None] = mapped_column(String(32))
    request: Mapped[str] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus), default=JobStatus.QUEUED, index=True
    )
    steps_done: Mapped[str] = mapped_column(Text, default="[]")
    current_step: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(300), default="")
    summary: Mapped[str] = mapped_column(Text, default="{}")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
