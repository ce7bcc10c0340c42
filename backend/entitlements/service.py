"""School aid and employment rights (no FastAPI here).

A grant is stored with the holder and queued as a write on each active card of the holder that
carries the application (Cursus for aid, employment for rights): the next tap at a terminal that
writes that application puts it on the card.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.actions import service as actions
from backend.actions.models import ActionKind, CardAction
from backend.auth.roles import Application
from backend.cards import service as cards
from backend.cards.models import CardStatus
from backend.columns import utcnow
from backend.entitlements.models import AidPurpose, EmploymentRight, SchoolAid
from backend.errors import Conflict
from backend.holders.service import get_holder


def _queue(
    session: Session,
    holder_id: int,
    application: Application,
    kind: ActionKind,
    params: dict[str, object],
    by: str,
) -> list[CardAction]:
    queued = []
    for card in cards.cards_of_holder(session, holder_id):
        # A card being issued at the desk gets it too: the desk job writes it with the card.
        usable = card.status in (CardStatus.ACTIVE, CardStatus.ISSUING)
        if usable and application in cards.applications_of(card):
            queued.append(
                actions.create_action(
                    session,
                    card_serial=card.serial,
                    application=application,
                    kind=kind,
                    params=params,
                    created_by=by,
                )
            )
    return queued


def grant_school_aid(
    session: Session,
    *,
    holder_id: int,
    school_year: str,
    purpose: AidPurpose,
    funder: str,
    amount_cents: int,
    by: str,
) -> tuple[SchoolAid, list[CardAction]]:
    """Grant ring-fenced aid; queue the credit on the holder's Cursus cards.

    Raises:
        NotFound: no such holder.
        Conflict: this funder already granted this purpose for this school year.
    """
    get_holder(session, holder_id)
    exists = session.scalar(
        select(SchoolAid).where(
            SchoolAid.holder_id == holder_id,
            SchoolAid.school_year == school_year,
            SchoolAid.purpose == purpose,
            SchoolAid.funder == funder,
        )
    )
    if exists is not None:
        raise Conflict(
            f"aide {purpose.value} {school_year} de {funder} déjà accordée",
            f"{funder} already granted {purpose.value} aid for {school_year}",
        )
    aid = SchoolAid(
        holder_id=holder_id,
        school_year=school_year,
        purpose=purpose,
        funder=funder,
        amount_cents=amount_cents,
        granted_at=utcnow(),
        granted_by=by,
    )
    session.add(aid)
    session.flush()
    queued = _queue(
        session,
        holder_id,
        Application.CURSUS,
        ActionKind.AID_CREDIT,
        {
            "purse": f"cursus.{purpose.value}_aid",
            "amount": amount_cents,
            "funder": funder,
            "school_year": school_year,
            "aid_id": aid.id,
        },
        by,
    )
    return aid, queued


def grant_employment_right(
    session: Session,
    *,
    holder_id: int,
    partner: str,
    right_code: int,
    valid_from: date,
    valid_to: date,
    amount_cents: int | None,
    hours: int | None,
    by: str,
) -> tuple[EmploymentRight, list[CardAction]]:
    """Record a partner's right; queue it on the holder's cards carrying the employment app."""
    get_holder(session, holder_id)
    right = EmploymentRight(
        holder_id=holder_id,
        partner=partner,
        right_code=right_code,
        valid_from=valid_from,
        valid_to=valid_to,
        amount_cents=amount_cents,
        hours=hours,
        status="granted",
        granted_at=utcnow(),
    )
    session.add(right)
    session.flush()
    queued = _queue(
        session,
        holder_id,
        Application.EMPLOYMENT,
        ActionKind.RIGHT_GRANT,
        {
            "right_code": right_code,
            "partner": partner,
            "valid_from": valid_from.isoformat(),
            "valid_to": valid_to.isoformat(),
            "amount": amount_cents,
            "hours": hours,
            "right_id": right.id,
        },
        by,
    )
    return right, queued


def aids_of_holder(session: Session, holder_id: int) -> list[SchoolAid]:
    """Every aid granted to a holder."""
    return list(
        session.scalars(
            select(SchoolAid).where(SchoolAid.holder_id == holder_id).order_by(SchoolAid.id)
        )
    )
