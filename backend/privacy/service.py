"""Privacy operations (no FastAPI here).

- :func:`record_card_link` / :func:`purge_card_links`: the only pseudonym -> serial link, kept at
  most ``card_link_retention`` (48 hours), for fraud control.
- :func:`purge_batch_bodies`: the bytes of uploaded batches hold card serials beside the
  terminal sequences the taps keep, another link; they go at most 48 hours after the validation
  loop processed them (never before).
- :func:`k_anonymous_counts`: open-data aggregation by station and hour, with every cell describing
  fewer than ``k`` distinct cards suppressed (k >= 10).
- :func:`open_data_export`: that aggregation over the ``taps`` table of the validation loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Integer, String, column, delete, select, table
from sqlalchemy.orm import Session

from backend.columns import UTCDateTime
from backend.errors import InvalidRequest
from backend.privacy.models import CardLink
from backend.uploads.models import UploadBatch, UploadBody

MIN_K = 10
CARD_LINK_MAX = timedelta(hours=48)


def record_card_link(session: Session, pseudonym: str, card_serial: str, at: datetime) -> None:
    """Remember which card a pseudonym stands for (kept until purged, at most 48 hours)."""
    link = session.get(CardLink, pseudonym)
    if link is None:
        session.add(CardLink(pseudonym=pseudonym, card_serial=card_serial.upper(), created_at=at))
    session.flush()


def serial_for(session: Session, pseudonym: str) -> str | None:
    """The card behind a pseudonym, while the link still exists (fraud control only)."""
    link = session.get(CardLink, pseudonym)
    return link.card_serial if link is not None else None


def purge_card_links(session: Session, now: datetime, retention: timedelta = CARD_LINK_MAX) -> int:
    """Delete links older than ``retention`` (never more than 48 hours); return how many.

    Holders who asked on their page to keep their own trips get them copied under their account
    first, while the link still exists, and their kept trips older than a year go
    (``backend.holderpage.history``, docs/holder.md).
    """
    from backend.holderpage.history import collect_kept_trips, purge_kept_trips

    collect_kept_trips(session)
    purge_kept_trips(session, now)
    retention = min(retention, CARD_LINK_MAX)
    result = session.execute(delete(CardLink).where(CardLink.created_at < now - retention))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_batch_bodies(
    session: Session, now: datetime, retention: timedelta = CARD_LINK_MAX
) -> int:
    """Delete the bytes of batches processed more than ``retention`` ago (at most 48 hours).

    A batch's body carries the card serials of its records; once the validation loop has
    stored them as taps under pseudonyms, the body is the one other way back from a tap to a
    card. Pending batches are never touched (nothing is lost); the batch rows stay, with the
    digest that recognises a re-sent batch.

    Returns:
        How many bodies were deleted.
    """
    retention = min(retention, CARD_LINK_MAX)
    processed = select(UploadBatch.id).where(UploadBatch.processed_at < now - retention)
    result = session.execute(delete(UploadBody).where(UploadBody.batch_row.in_(processed)))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class OpenDataCell:
    """Taps at one station in one hour (only cells with at least k distinct cards)."""

    station_id: int
    hour: datetime
    taps: int
    cards: int


def k_anonymous_counts(
    taps: Iterable[tuple[int | None, datetime, str]], k: int = MIN_K
) -> tuple[list[OpenDataCell], int]:
    """Aggregate ``(station_id, occurred_at, card_pseudonym)`` by station and hour.

    A cell is published only if at least ``k`` distinct cards make it up; smaller cells are
    suppressed (not rounded, not merged). Taps without a station are never published.

    Returns:
        The published cells (sorted) and the number of suppressed cells.

    Raises:
        InvalidRequest: ``k`` below 10.
    """
    if k < MIN_K:
        raise InvalidRequest(
            f"k-anonymat : k vaut au moins {MIN_K}", f"k-anonymity needs k >= {MIN_K}"
        )
    counts: dict[tuple[int, datetime], int] = defaultdict(int)
    cards: dict[tuple[int, datetime], set[str]] = defaultdict(set)
    for station_id, occurred_at, pseudonym in taps:
        if station_id is None:
            continue
        hour = occurred_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        counts[(station_id, hour)] += 1
        cards[(station_id, hour)].add(pseudonym)
    published, suppressed = [], 0
    for key in sorted(counts):
        if len(cards[key]) >= k:
            published.append(OpenDataCell(key[0], key[1], counts[key], len(cards[key])))
        else:
            suppressed += 1
    return published, suppressed


_TAPS = table(
    "taps",
    column("station_id", Integer),
    column("occurred_at", UTCDateTime),
    column("card_pseudonym", String),
    column("outcome", String),
)


def open_data_export(session: Session, day: date, k: int = MIN_K) -> tuple[list[OpenDataCell], int]:
    """Committed taps of one day (UTC), by station and hour, k-anonymous."""
    start = datetime.combine(day, time(0), UTC)
    rows = session.execute(
        select(_TAPS.c.station_id, _TAPS.c.occurred_at, _TAPS.c.card_pseudonym).where(
            _TAPS.c.occurred_at >= start,
            _TAPS.c.occurred_at < start + timedelta(days=1),
            _TAPS.c.outcome == "COMMITTED",
        )
    )
    return k_anonymous_counts(((r[0], r[1], r[2]) for r in rows), k)
