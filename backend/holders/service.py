"""Holder operations (no FastAPI here). Lookups are audited by the caller's router."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.columns import utcnow
from backend.errors import InvalidRequest, NotFound
from backend.holders.models import Holder


def create_holder(
    session: Session,
    *,
    anonymous: bool = False,
    family_name: str | None = None,
    given_name: str | None = None,
    birth_date: date | None = None,
    email: str | None = None,
    phone: str | None = None,
    postal_address: str | None = None,
) -> Holder:
    """Create a holder (an anonymous one keeps every personal field empty).

    Raises:
        InvalidRequest: personal data given for an anonymous holder, or a name missing.
    """
    personal = (family_name, given_name, birth_date, email, phone, postal_address)
    if anonymous and any(v is not None for v in personal):
        raise InvalidRequest(
            "un titulaire anonyme ne porte aucune donnée personnelle",
            "an anonymous holder carries no personal data",
        )
    if not anonymous and (not family_name or not given_name):
        raise InvalidRequest("nom et prénom obligatoires", "family and given names are required")
    holder = Holder(
        anonymous=anonymous,
        family_name=family_name,
        given_name=given_name,
        birth_date=birth_date,
        email=email,
        phone=phone,
        postal_address=postal_address,
        created_at=utcnow(),
    )
    session.add(holder)
    session.flush()
    return holder


def get_holder(session: Session, holder_id: int) -> Holder:
    """The holder ``holder_id``.

    Raises:
        NotFound: no such holder.
    """
    holder = session.get(Holder, holder_id)
    if holder is None:
        raise NotFound(f"titulaire {holder_id} inconnu", f"unknown holder {holder_id}")
    return holder


def search_holders(
    session: Session, *, family_name: str, birth_date: date | None = None, limit: int = 50
) -> list[Holder]:
    """Holders whose family name starts with ``family_name`` (case-insensitive)."""
    if len(family_name.strip()) < 2:
        raise InvalidRequest(
            "au moins deux lettres du nom", "give at least two letters of the family name"
        )
    query = (
        select(Holder)
        .where(Holder.family_name.ilike(family_name.strip().replace("%", "") + "%"))
        .order_by(Holder.family_name, Holder.given_name)
        .limit(limit)
    )
    if birth_date is not None:
        query = query.where(Holder.birth_date == birth_date)
    return list(session.scalars(query))


def update_contact(
    session: Session,
    holder_id: int,
    *,
    email: str | None,
    phone: str | None,
    postal_address: str | None,
) -> Holder:
    """Change a holder's contact details (not possible for an anonymous holder).

    Raises:
        NotFound: no such holder.
        InvalidRequest: the holder is anonymous.
    """
    holder = get_holder(session, holder_id)
    if holder.anonymous:
        raise InvalidRequest(
            "un titulaire anonyme n'a pas de coordonnées", "an anonymous holder has no contact"
        )
    holder.email, holder.phone, holder.postal_address = email, phone, postal_address
    return holder
