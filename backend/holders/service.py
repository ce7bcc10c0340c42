"""Holder operations (no FastAPI here). Lookups are audited by the caller's router."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.columns import utcnow
from backend.errors import InvalidRequest, NotFound
from backend.holders.models import Holder

PARIS = ZoneInfo("Europe/Paris")
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def clean_name(value: str | None, field: str) -> str | None:
    """A name with its surrounding spaces removed.

    Raises:
        InvalidRequest: the name is blank or only spaces.
    """
    if value is None:
        return None
    cleaned = " ".join(value.split())
    if not cleaned:
        label = "nom" if field == "family_name" else "prénom"
        raise InvalidRequest(f"{label} vide", f"{field} is blank", field=field)
    return cleaned


def check_birth_date(value: date | None, *, today: date | None = None) -> None:
    """Refuse a birth date in the future or before 1900.

    Raises:
        InvalidRequest: the date is out of range.
    """
    if value is None:
        return
    today = today or datetime.now(PARIS).date()
    if value > today:
        raise InvalidRequest(
            "date de naissance dans le futur", "birth date in the future", field="birth_date"
        )
    if value < EARLIEST_BIRTH_DATE:
        raise InvalidRequest(
            "date de naissance antérieure à 1900", "birth date before 1900", field="birth_date"
        )


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
    family_name = clean_name(family_name, "family_name")
    given_name = clean_name(given_name, "given_name")
    if not anonymous and (not family_name or not given_name):
        raise InvalidRequest("nom et prénom obligatoires", "family and given names are required")
    check_birth_date(birth_date)
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


def possible_duplicates(
    session: Session, *, family_name: str, given_name: str, birth_date: date | None
) -> list[Holder]:
    """Holders with the same names (case-insensitive) and birth date: probably the same person."""
    if birth_date is None:
        return []
    query = select(Holder).where(
        func.lower(Holder.family_name) == family_name.lower(),
        func.lower(Holder.given_name) == given_name.lower(),
        Holder.birth_date == birth_date,
    )
    return list(session.scalars(query.order_by(Holder.id)))


def search_holders(
    session: Session,
    *,
    family_name: str | None = None,
    birth_date: date | None = None,
    postcode: str | None = None,
    holder_ids: list[int] | None = None,
    limit: int = 50,
) -> list[Holder]:
    """Holders matching every criterion given: family name starting with ``family_name``
    (case-insensitive), born on ``birth_date``, ``postcode`` in the postal address, or among
    ``holder_ids`` (a card serial found).

    Raises:
        InvalidRequest: no criterion, or fewer than two letters of the name.
    """
    name = (family_name or "").strip()
    if family_name is not None and len(name) < 2:
        raise InvalidRequest(
            "au moins deux lettres du nom",
            "give at least two letters of the family name",
            field="family_name",
        )
    if not name and birth_date is None and not postcode and holder_ids is None:
        raise InvalidRequest(
            "indiquez un nom, une date de naissance, un code postal ou un numéro de carte",
            "give a name, a birth date, a postcode or a card serial",
        )
    query = select(Holder).order_by(Holder.family_name, Holder.given_name, Holder.id).limit(limit)
    if name:
        query = query.where(Holder.family_name.ilike(name.replace("%", "") + "%"))
    if birth_date is not None:
        query = query.where(Holder.birth_date == birth_date)
    if postcode:
        query = query.where(Holder.postal_address.like(f"%{postcode}%"))
    if holder_ids is not None:
        query = query.where(Holder.id.in_(holder_ids))
    return list(session.scalars(query))


def update_details(
    session: Session,
    holder_id: int,
    changes: dict[str, object],
) -> Holder:
    """Change a holder's details (names, birth date, contact); only the keys given change.

    Raises:
        NotFound: no such holder.
        InvalidRequest: the holder is anonymous, or a value is refused.
    """
    holder = get_holder(session, holder_id)
    if holder.anonymous:
        raise InvalidRequest(
            "un titulaire anonyme n'a pas de données personnelles",
            "an anonymous holder has no personal data",
        )
    for field in ("family_name", "given_name"):
        if field in changes:
            value = clean_name(changes[field], field)  # type: ignore[arg-type]
            if value is None:
                raise InvalidRequest("champ obligatoire", f"{field} is required", field=field)
            setattr(holder, field, value)
    if "birth_date" in changes:
        birth = changes["birth_date"]
        assert birth is None or isinstance(birth, date)
        check_birth_date(birth)
        holder.birth_date = birth
    for field in ("email", "phone", "postal_address"):
        if field in changes:
            setattr(holder, field, changes[field])
    session.flush()
    return holder
