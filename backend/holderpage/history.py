"""Trips kept at the holder's own request, and their purge.

By default nothing here runs for a holder: taps stay under their keyed pseudonym, and the link from
a pseudonym to a card (``card_links``) is deleted after 48 hours (docs/backend.md, Privacy). A
holder who opts in on their page gets their own trips copied under their account while that link
still exists:

- :func:`collect_kept_trips` copies, for each opted-in holder, the taps of their cards that
  occurred after they opted in and are not kept yet. The 48-hour purge calls it just before it
  deletes the links (``backend.privacy.service.purge_card_links``), and the page calls it for the
  holder who looks, so no trip is lost between two purges. The copy carries the holder id, never
  the pseudonym: the kept trip does not lead back to the tap tables.
- Opting out deletes every kept trip of the holder at once (:func:`forget_kept_trips`).
- :func:`purge_kept_trips` deletes kept trips older than a year; the same purge runs it.

Kept trips are read only by the holder's own page (and their legal guardian's, for a minor):
no agent endpoint, no report, no open-data export reads ``holder_kept_trips``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.cards.models import Card
from backend.holderpage.models import HolderAccount, KeptTrip
from backend.privacy.models import CardLink

DEFAULT_KEPT_TRIP_DAYS = 365


def collect_kept_trips(session: Session, *, holder_id: int | None = None) -> int:
    """Copy the linkable taps of opted-in holders (or of one holder) under their account.

    Returns:
        How many trips were newly kept.
    """
    from backend.validation.models import Tap

    query = select(HolderAccount).where(HolderAccount.keep_trip_history.is_(True))
    if holder_id is not None:
        query = query.where(HolderAccount.holder_id == holder_id)
    kept = 0
    for account in session.scalars(query):
        serials = list(
            session.scalars(select(Card.serial).where(Card.holder_id == account.holder_id))
        )
        if not serials or account.history_since is None:
            continue
        pseudonyms = list(
            session.scalars(select(CardLink.pseudonym).where(CardLink.card_serial.in_(serials)))
        )
        if not pseudonyms:
            continue
        already = select(KeptTrip.tap_id).where(KeptTrip.holder_id == account.holder_id)
        taps = session.scalars(
            select(Tap)
            .where(
                Tap.card_pseudonym.in_(pseudonyms),
                Tap.occurred_at >= account.history_since,
                Tap.id.not_in(already),
            )
            .order_by(Tap.id)
        )
        for tap in taps:
            session.add(
                KeptTrip(
                    holder_id=account.holder_id,
                    tap_id=tap.id,
                    occurred_at=tap.occurred_at,
                    kind=tap.kind,
                    application=tap.application,
                    outcome=tap.outcome,
                    station_id=tap.station_id,
                    school_uai=tap.school_uai,
                    product_code=tap.product_code,
                )
            )
            kept += 1
    session.flush()
    return kept


def forget_kept_trips(session: Session, holder_id: int) -> int:
    """Delete every trip kept for a holder (they opted out); return how many."""
    result = session.execute(delete(KeptTrip).where(KeptTrip.holder_id == holder_id))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_kept_trips(session: Session, now: datetime, *, days: int = DEFAULT_KEPT_TRIP_DAYS) -> int:
    """Delete kept trips older than ``days``; return how many."""
    result = session.execute(
        delete(KeptTrip).where(KeptTrip.occurred_at < now - timedelta(days=days))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def kept_trips(session: Session, holder_id: int, *, limit: int = 200) -> list[KeptTrip]:
    """A holder's kept trips, newest first."""
    return list(
        session.scalars(
            select(KeptTrip)
            .where(KeptTrip.holder_id == holder_id)
            .order_by(KeptTrip.occurred_at.desc(), KeptTrip.id.desc())
            .limit(limit)
        )
    )
