"""The holder's page (no FastAPI here): accounts, sign-in, what a holder sees and does.

Who sees what: every read and write goes through :func:`subject_holder` (the signed-in holder, or
a minor whose legal guardian they are) and :func:`card_of` (a card of that holder). Anything else
is "unknown", with the same 404 as a card that does not exist, so another holder's ids reveal
nothing. Every action a holder takes (block, purchase, activation, sign-in failures, data
download, history choice) writes an audit row (agent ``holder:<account id>``, role ``holder``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from backend.actions import service as actions
from backend.actions.models import ActionKind, CardAction
from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend.auth.roles import Application
from backend.cards import service as cards
from backend.cards.models import Card, CardStatus
from backend.columns import utcnow
from backend.desk.models import DeskJob
from backend.entitlements.models import AidPurpose, EmploymentRight, SchoolAid
from backend.errors import BackendError, Conflict, InvalidRequest, NotFound
from backend.holderpage import history, menus
from backend.holderpage.models import (
    ActivationCode,
    GuardianLink,
    HolderAccount,
    LoginAttempt,
    OnlinePayment,
)
from backend.holderpage.payments import PaymentDeclined, PaymentProvider
from backend.holderpage.security import (
    code_digest,
    hash_password,
    new_activation_code,
    password_matches,
)
from backend.holderpage.settings import HolderSettings
from backend.holders.models import Holder
from backend.holders.service import get_holder
from backend.products import service as products
from backend.products.models import Product, Sale

if TYPE_CHECKING:
    from backend.auth.dependencies import AgentPrincipal
    from backend.keys.envelopes import TableSigner

HOLDER_ROLE = "holder"
MIN_PASSWORD_LENGTH = 10
MAJORITY_AGE = 18
_SERIAL = re.compile(r"(?:[0-9A-F]{2}){1,16}")
MAX_ONLINE_RELOAD_CENTS = 15_000  # 150 €: the wallet's online reload ceiling

PURSE_LABELS = {
    "wallet.sv": "Porte-monnaie",
    "cursus.books_aid": "Aide livres et matériel",
    "cursus.sport_aid": "Aide sport et loisirs",
    "cursus.canteen_aid": "Aide cantine",
}
APPLICATION_LABELS = {
    Application.PLUM: "PLUM (transports)",
    Application.WALLET: "Ma région numérique (porte-monnaie)",
    Application.CURSUS: "Cursus (jeunes)",
    Application.EMPLOYMENT: "Mes droits pour l'emploi",
}
STATUS_LABELS = {
    CardStatus.ACTIVE: "active",
    CardStatus.BLOCKED: "bloquée",
    CardStatus.REPLACED: "remplacée",
}
AID_LABELS = {
    AidPurpose.BOOKS: "Livres et matériel",
    AidPurpose.SPORT: "Sport et loisirs",
    AidPurpose.CANTEEN: "Cantine",
}
ACTION_LABELS = {
    ActionKind.LOAD_CONTRACT: "Titre de transport",
    ActionKind.SV_RELOAD: "Rechargement du porte-monnaie",
    ActionKind.AID_CREDIT: "Aide Cursus",
    ActionKind.SCHOOL_TRANSPORT: "Transport scolaire gratuit",
    ActionKind.RIGHT_GRANT: "Droit emploi",
    ActionKind.MOVE_BALANCE: "Report de solde d'une ancienne carte",
}
PARTNER_LABELS = {
    "france_travail": "France Travail (ex-Pôle emploi)",
    "mission_locale": "Mission locale",
    "maison_emploi": "Maison de l'emploi",
    "cap_emploi": "Cap emploi",
    "training_body": "Organisme de formation",
    "pension_fund": "Caisse de retraite",
    "region": "Région Hauts-de-France",
    "apec": "Apec",
    "chamber": "Chambre consulaire (CCI, CMA)",
}
# Right codes of card_schema.records.employment.RIGHTS, in French.
RIGHT_LABELS = {
    1: "Compte personnel de formation",
    2: "Aide à la mobilité",
    3: "Aide à la création d'entreprise",
    4: "Reconversion",
    5: "Bilan de compétences",
    6: "Validation des acquis de l'expérience",
    7: "Apprentissage",
    8: "Aide au stage",
    9: "Information retraite",
    10: "Aide au permis de conduire",
    11: "Aide à la garde d'enfants",
}
LOOKUP_LABELS = {
    "holder.activation": "code d'activation de votre espace remis au guichet",
    "holder.guardian": "représentant légal enregistré au guichet",
    "holder.read": "consultation de votre dossier au guichet",
    "holder.search": "recherche de votre nom au guichet",
    "card.read": "consultation de votre carte au guichet",
    "card.list": "liste de vos cartes au guichet",
    "desk.jobs": "historique de vos cartes au guichet",
    "partner.consultation": "lecture de vos droits emploi par un partenaire",
}


class TooManyAttempts(BackendError):
    """Too many failed sign-ins for this login or from this client: wait, then try again."""

    status_code = 429
    code = "too_many_attempts"


# -- accounts: activation codes (desk side), activation, guardians --------------------------------
def _is_minor(holder: Holder, today: date) -> bool:
    born = holder.birth_date
    if born is None:
        return False
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return age < MAJORITY_AGE


def issue_activation_code(
    session: Session,
    agent: AgentPrincipal,
    holder_id: int,
    reason: str,
    settings: HolderSettings,
    *,
    now: datetime | None = None,
) -> tuple[str, ActivationCode]:
    """A one-time code for a holder to open their page, handed out at the desk (audited).

    Earlier unused codes of the holder stop working: only the last one handed out is valid.

    Raises:
        NotFound: no such holder.
        InvalidRequest: an anonymous holder (no page without an identity), or no reason.
    """
    now = now or utcnow()
    holder = get_holder(session, holder_id)
    if holder.anonymous:
        raise InvalidRequest(
            "une carte anonyme n'a pas d'espace en ligne", "an anonymous holder has no page"
        )
    audit.record_lookup(
        session, agent, action="holder.activation", subject=f"holder:{holder_id}", reason=reason
    )
    for old in session.scalars(
        select(ActivationCode).where(
            ActivationCode.holder_id == holder_id, ActivationCode.used_at.is_(None)
        )
    ):
        old.expires_at = min(old.expires_at, now)
    code = new_activation_code()
    row = ActivationCode(
        holder_id=holder_id,
        code_hash=code_digest(code),
        issued_by=agent.username,
        issued_at=now,
        expires_at=now + timedelta(days=settings.activation_days),
    )
    session.add(row)
    session.flush()
    return code, row


def grant_guardian(
    session: Session,
    agent: AgentPrincipal,
    guardian_holder_id: int,
    ward_holder_id: int,
    reason: str,
    *,
    today: date | None = None,
) -> GuardianLink:
    """Record at the desk that a holder is a minor's legal guardian (audited).

    Raises:
        NotFound: either holder unknown.
        InvalidRequest: same person, anonymous holder, or the ward is not a minor.
        Conflict: already recorded.
    """
    today = today or utcnow().date()
    guardian = get_holder(session, guardian_holder_id)
    ward = get_holder(session, ward_holder_id)
    if guardian.id == ward.id or guardian.anonymous or ward.anonymous:
        raise InvalidRequest(
            "tuteur et mineur : deux titulaires nominatifs distincts",
            "guardian and ward must be two distinct named holders",
        )
    if not _is_minor(ward, today):
        raise InvalidRequest(
            "seul l'espace d'un mineur peut être géré par son représentant légal",
            "only a minor's page can be managed by a legal guardian",
        )
    if session.scalar(
        select(GuardianLink).where(
            GuardianLink.guardian_holder_id == guardian.id,
            GuardianLink.ward_holder_id == ward.id,
        )
    ):
        raise Conflict("représentant légal déjà enregistré", "guardian already recorded")
    audit.record_lookup(
        session,
        agent,
        action="holder.guardian",
        subject=f"holder:{ward.id}",
        reason=f"{reason.strip()} (représentant : titulaire {guardian.id})",
    )
    link = GuardianLink(
        guardian_holder_id=guardian.id,
        ward_holder_id=ward.id,
        granted_by=agent.username,
        granted_at=utcnow(),
    )
    session.add(link)
    session.flush()
    return link


def _canonical_login(login: str) -> str:
    return login.strip().lower()


def activate(
    session: Session, code: str, login: str, password: str, *, now: datetime | None = None
) -> HolderAccount:
    """Open a holder's page with the one-time code from the desk: choose a login and password.

    Raises:
        InvalidRequest: unknown, used or expired code (one message for all three), a short
            password.
        Conflict: the login is taken, or the holder already has a password.
    """
    now = now or utcnow()
    login = _canonical_login(login)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"mot de passe trop court (au moins {MIN_PASSWORD_LENGTH} caractères)",
            f"password too short (at least {MIN_PASSWORD_LENGTH} characters)",
        )
    row = session.scalar(
        select(ActivationCode).where(ActivationCode.code_hash == code_digest(code))
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidRequest(
            "code d'activation inconnu, déjà utilisé ou expiré : demandez-en un au guichet",
            "unknown, used or expired activation code",
        )
    if session.scalar(select(HolderAccount).where(HolderAccount.login == login)):
        raise Conflict("identifiant déjà utilisé", "login already taken")
    account = session.scalar(select(HolderAccount).where(HolderAccount.holder_id == row.holder_id))
    if account is not None and account.password_hash is not None:
        raise Conflict(
            "votre espace est déjà activé : connectez-vous", "this holder's page is already active"
        )
    if account is None:
        account = HolderAccount(holder_id=row.holder_id, created_at=now, keep_trip_history=False)
        session.add(account)
    account.login = login
    account.password_hash = hash_password(password)
    row.used_at = now
    session.flush()
    _audit(session, account, "holder.activated", f"holder:{row.holder_id}", "activation en ligne")
    return account


# -- sign-in and throttling ----------------------------------------------------------------------
class LoginOutcome(StrEnum):
    """How a sign-in attempt ended."""

    OK = "ok"
    WRONG = "wrong"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoginResult:
    """A sign-in attempt: the account when it succeeded."""

    outcome: LoginOutcome
    account: HolderAccount | None = None


def attempt_login(
    session: Session,
    login: str,
    password: str,
    client: str,
    settings: HolderSettings,
    *,
    now: datetime | None = None,
) -> LoginResult:
    """Check a login and password, counting failures per login and per client address.

    Once ``max_failures_per_login`` failures for one login (or ``max_failures_per_client`` from
    one client) fall within ``failure_window_minutes``, every attempt is refused without checking
    the password, even a right one, until the oldest failure leaves the window. Failures and
    refusals are audited. The caller commits before answering (the failure must be kept even
    though the request fails).
    """
    now = now or utcnow()
    login = _canonical_login(login)[:200]
    client = client[:64]
    since = now - timedelta(minutes=settings.failure_window_minutes)
    recent = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.at >= since)
    per_login = session.scalar(recent.where(LoginAttempt.login == login)) or 0
    per_client = session.scalar(recent.where(LoginAttempt.client == client)) or 0
    if (
        per_login >= settings.max_failures_per_login
        or per_client >= settings.max_failures_per_client
    ):
        audit.record(
            session,
            agent=f"client:{client}"[:64],
            role=HOLDER_ROLE,
            action="holder.login_throttled",
            subject=f"login:{login}"[:64],
            reason="trop de tentatives de connexion",
        )
        return LoginResult(LoginOutcome.THROTTLED)
    account = session.scalar(select(HolderAccount).where(HolderAccount.login == login))
    if not password_matches(password, account.password_hash if account else None):
        session.add(LoginAttempt(login=login, client=client, at=now))
        audit.record(
            session,
            agent=f"client:{client}"[:64],
            role=HOLDER_ROLE,
            action="holder.login_failed",
            subject=f"login:{login}"[:64],
            reason="identifiant ou mot de passe incorrect",
        )
        session.flush()
        return LoginResult(LoginOutcome.WRONG)
    assert account is not None
    session.execute(delete(LoginAttempt).where(LoginAttempt.login == login))
    return LoginResult(LoginOutcome.OK, account)


def throttled_error(settings: HolderSettings) -> TooManyAttempts:
    """The French refusal of a throttled sign-in."""
    minutes = settings.failure_window_minutes
    return TooManyAttempts(
        f"trop de tentatives de connexion : réessayez dans {minutes} minutes",
        f"too many sign-in attempts: try again in {minutes} minutes",
    )


def get_account(session: Session, account_id: int) -> HolderAccount:
    """The account behind a valid token.

    Raises:
        NotFound: the account is gone.
    """
    account = session.get(HolderAccount, account_id)
    if account is None:
        raise NotFound("compte inconnu", "unknown account")
    return account


# -- OIDC identities -----------------------------------------------------------------------------
def account_for_identity(
    session: Session,
    *,
    issuer: str,
    sub: str,
    given_name: str,
    family_name: str,
    birthdate: date,
    now: datetime | None = None,
) -> HolderAccount | None:
    """The account of an identity asserted by an OIDC provider (FranceConnect claims).

    An identity seen before is found by (issuer, sub). A new one is matched to exactly one named
    holder with the same family name, first given name and birth date (FranceConnect's « identité
    pivot »), and linked for good. No match, or more than one: ``None`` (the holder goes to a desk).
    """
    now = now or utcnow()
    account = session.scalar(
        select(HolderAccount).where(
            HolderAccount.oidc_issuer == issuer, HolderAccount.oidc_sub == sub
        )
    )
    if account is not None:
        return account
    first_given = given_name.strip().split(" ")[0]
    candidates = list(
        session.scalars(
            select(Holder).where(
                Holder.anonymous.is_(False),
                func.lower(Holder.family_name) == family_name.strip().lower(),
                Holder.birth_date == birthdate,
            )
        )
    )
    matches = [
        h
        for h in candidates
        if (h.given_name or "").strip().split(" ")[0].lower() == first_given.lower()
    ]
    if len(matches) != 1:
        return None
    holder = matches[0]
    account = session.scalar(select(HolderAccount).where(HolderAccount.holder_id == holder.id))
    if account is None:
        account = HolderAccount(holder_id=holder.id, created_at=now, keep_trip_history=False)
        session.add(account)
    elif account.oidc_sub is not None:
        return None  # already linked to another identity of the provider
    account.oidc_issuer, account.oidc_sub = issuer, sub
    session.flush()
    _audit(session, account, "holder.oidc_linked", f"holder:{holder.id}", f"identité {issuer}")
    return account


# -- who sees what -------------------------------------------------------------------------------
def wards_of(session: Session, holder_id: int, today: date) -> list[Holder]:
    """The minors whose page this holder manages as their legal guardian."""
    wards = session.scalars(
        select(Holder)
        .join(GuardianLink, GuardianLink.ward_holder_id == Holder.id)
        .where(GuardianLink.guardian_holder_id == holder_id)
        .order_by(Holder.given_name)
    )
    return [w for w in wards if _is_minor(w, today)]


def subject_holder(
    session: Session, account: HolderAccount, holder_id: int | None, *, today: date | None = None
) -> Holder:
    """The holder whose page is asked for: the account's own, or a minor it is guardian of.

    Raises:
        NotFound: any other holder (the same answer whether it exists or not).
    """
    today = today or utcnow().date()
    if holder_id is None or holder_id == account.holder_id:
        return get_holder(session, account.holder_id)
    if any(w.id == holder_id for w in wards_of(session, account.holder_id, today)):
        return get_holder(session, holder_id)
    raise NotFound(f"titulaire {holder_id} inconnu", f"unknown holder {holder_id}")


def card_of(session: Session, holder: Holder, serial: str) -> Card:
    """A card of this holder.

    Raises:
        NotFound: no such card, or a card of someone else (same message).
    """
    wanted = serial.strip().upper()
    card = (
        session.scalar(select(Card).where(Card.serial == wanted))
        if _SERIAL.fullmatch(wanted)
        else None
    )
    if card is None or card.holder_id != holder.id:
        shown = wanted if _SERIAL.fullmatch(wanted) else "demandée"
        raise NotFound(f"carte {shown} inconnue", f"unknown card {shown}")
    return card


def _audit(
    session: Session, account: HolderAccount, action: str, subject: str, reason: str
) -> None:
    audit.record(
        session,
        agent=f"holder:{account.id}",
        role=HOLDER_ROLE,
        action=action,
        subject=subject[:64],
        reason=reason,
    )


# -- what the holder sees ------------------------------------------------------------------------
def _action_out(action: CardAction, names: dict[int, str] | None = None) -> dict[str, Any]:
    params = json.loads(action.params)
    amount = params.get("amount")
    code = params.get("product_code")
    return {
        "product_name": (names or {}).get(code) if isinstance(code, int) else None,
        "action_id": action.id,
        "kind": action.kind.value,
        "label": ACTION_LABELS.get(action.kind, action.kind.value),
        "application": action.application.value,
        "status": action.status.value,
        "amount_cents": amount if isinstance(amount, int) else None,
        "product_code": params.get("product_code"),
        "created_at": action.created_at.isoformat(),
        "confirmed_at": action.confirmed_at.isoformat() if action.confirmed_at else None,
    }


def _product_names(session: Session) -> dict[int, str]:
    return {p.code: p.name for p in session.scalars(select(Product))}


def card_view(session: Session, card: Card, names: dict[int, str]) -> dict[str, Any]:
    """One card as its holder sees it."""
    balances = cards.known_balances(card)
    pending = actions.pending_actions(session, card_serial=card.serial)
    return {
        "serial": card.serial,
        "status": card.status.value,
        "status_label": STATUS_LABELS[card.status],
        "issued_at": card.issued_at.isoformat(),
        "blocked_at": card.blocked_at.isoformat() if card.blocked_at else None,
        "applications": [
            {"application": a.value, "label": APPLICATION_LABELS[a]}
            for a in cards.applications_of(card)
        ],
        "balances": [
            {
                "purse": purse,
                "label": PURSE_LABELS.get(purse, "Voyages restants"),
                "value": value,
                "unit": "count" if purse.startswith("plum.counter") else "eurocent",
            }
            for purse, value in sorted(balances.items())
        ],
        "balances_at": card.balances_at.isoformat() if card.balances_at else None,
        "pending": [_action_out(a, names) for a in pending],
    }


def aid_view(session: Session, holder: Holder, holder_cards: list[Card]) -> list[dict[str, Any]]:
    """Cursus aid per purpose: granted, left on the card at its last known pass, still to write."""
    grants = list(session.scalars(select(SchoolAid).where(SchoolAid.holder_id == holder.id)))
    out = []
    for purpose in AidPurpose:
        granted = sum(g.amount_cents for g in grants if g.purpose == purpose)
        purse = f"cursus.{purpose.value}_aid"
        left: int | None = None
        pending = 0
        for card in holder_cards:
            if card.status == CardStatus.REPLACED:  # its balances moved to the new card
                continue
            known = cards.known_balances(card)
            if purse in known:
                left = (left or 0) + known[purse]
            for action in actions.pending_actions(session, card_serial=card.serial):
                params = json.loads(action.params)
                if params.get("purse") == purse and isinstance(params.get("amount"), int):
                    pending += params["amount"]
        if granted or left is not None or pending:
            out.append(
                {
                    "purpose": purpose.value,
                    "label": AID_LABELS[purpose],
                    "granted_cents": granted,
                    "left_cents": left,
                    "pending_cents": pending,
                    "funders": sorted({g.funder for g in grants if g.purpose == purpose}),
                }
            )
    return out


def consultations(session: Session, holder: Holder, serials: list[str]) -> list[dict[str, Any]]:
    """Who consulted this holder's data: desk lookups and partner readings in the audit trail.

    Holder accounts' own rows (``role`` ``holder``) are not consultations by someone else.
    """
    subjects = [f"holder:{holder.id}"] + [f"card:{s}" for s in serials]
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.subject.in_(subjects), AuditEntry.role != HOLDER_ROLE)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(200)
    )
    return [
        {
            "at": row.at.isoformat(),
            "who": f"{'Agent' if row.role in ('agent', 'supervisor') else row.role.capitalize()} "
            f"{row.agent}",
            "what": LOOKUP_LABELS.get(row.action, row.action),
            "reason": row.reason,
        }
        for row in rows
    ]


def rights_view(session: Session, holder: Holder) -> list[dict[str, Any]]:
    """The holder's employment rights (from « Mes droits pour l'emploi »)."""
    rights = session.scalars(
        select(EmploymentRight)
        .where(EmploymentRight.holder_id == holder.id)
        .order_by(EmploymentRight.valid_from)
    )
    return [
        {
            "partner": r.partner,
            "partner_label": PARTNER_LABELS.get(r.partner, r.partner),
            "right_code": r.right_code,
            "right_label": RIGHT_LABELS.get(r.right_code, f"droit n° {r.right_code}"),
            "status": r.status,
            "valid_from": r.valid_from.isoformat(),
            "valid_to": r.valid_to.isoformat(),
            "amount_cents": r.amount_cents,
            "hours": r.hours,
        }
        for r in rights
    ]


def school_of(session: Session, holder: Holder) -> str | None:
    """The school written in the holder's Cursus student record at the desk (latest job)."""
    jobs = session.scalars(
        select(DeskJob).where(DeskJob.holder_id == holder.id).order_by(DeskJob.id.desc())
    )
    for job in jobs:
        try:
            student = json.loads(job.request).get("student") or {}
        except ValueError:
            continue
        if isinstance(student, dict) and student.get("school_uai"):
            return str(student["school_uai"])
    return None


def overview(
    session: Session,
    account: HolderAccount,
    holder: Holder,
    settings: HolderSettings,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything the page shows for ``holder`` (the account's own or a ward's)."""
    now = now or utcnow()
    today = now.date()
    own = get_holder(session, account.holder_id)
    holder_cards = cards.cards_of_holder(session, holder.id)
    names = _product_names(session)
    preferences = session.scalar(select(HolderAccount).where(HolderAccount.holder_id == holder.id))
    keep = bool(preferences and preferences.keep_trip_history)
    if keep:
        history.collect_kept_trips(session, holder_id=holder.id)
    school = school_of(session, holder)
    return {
        "holder": {
            "holder_id": holder.id,
            "given_name": holder.given_name,
            "family_name": holder.family_name,
            "birth_date": holder.birth_date.isoformat() if holder.birth_date else None,
            "minor": _is_minor(holder, today),
        },
        "account": {
            "holder_id": own.id,
            "name": f"{own.given_name} {own.family_name}",
            "login": account.login,
            "oidc": account.oidc_sub is not None,
            "wards": [
                {"holder_id": w.id, "name": f"{w.given_name} {w.family_name}"}
                for w in wards_of(session, own.id, today)
            ],
        },
        "cards": [card_view(session, c, names) for c in holder_cards],
        "aid": aid_view(session, holder, holder_cards),
        "rights": rights_view(session, holder),
        "consultations": consultations(session, holder, [c.serial for c in holder_cards]),
        "menu": menus.week_menu(settings.menu_file, school, today) if school else None,
        "school_uai": school,
        "trip_history": {
            "keep": keep,
            "since": preferences.history_since.isoformat()
            if keep and preferences and preferences.history_since
            else None,
            "trips": [
                {
                    "occurred_at": t.occurred_at.isoformat(),
                    "kind": t.kind,
                    "application": t.application,
                    "outcome": t.outcome,
                    "station_id": t.station_id,
                    "school_uai": t.school_uai,
                }
                for t in history.kept_trips(session, holder.id)
            ],
        },
        "catalogue": [
            {
                "code": p.code,
                "name": p.name,
                "application": p.application.value,
                "amount_cents": p.amount_cents,
                "duration_days": p.duration_days,
                "trips": p.trips,
            }
            for p in products.list_products(session)
            if _sold_online(p)
        ],
    }


# -- what the holder does ------------------------------------------------------------------------
def block_own_card(
    session: Session,
    signer: TableSigner,
    account: HolderAccount,
    holder: Holder,
    serial: str,
) -> tuple[Card, list[CardAction]]:
    """Block a lost or stolen card at once: deny-listed (a new signed version), pending writes
    cancelled (audited).

    Raises:
        NotFound: not a card of this holder.
        Conflict: the card is already blocked or replaced.
    """
    card = card_of(session, holder, serial)
    if card.status != CardStatus.ACTIVE:
        raise Conflict(
            f"la carte {card.serial} est déjà {STATUS_LABELS[card.status]}",
            f"card {card.serial} is already {card.status.value}",
        )
    blocked = cards.block_card(
        session,
        signer,
        card.serial,
        "perte ou vol déclaré en ligne par le titulaire",
        by=f"holder:{account.id}",
    )
    _audit(session, account, "holder.block", f"card:{card.serial}", "carte bloquée en ligne")
    return blocked


def _sold_online(product: Product) -> bool:
    """Season passes and carnets of PLUM, and the wallet reload, are sold on the page."""
    if product.application == Application.WALLET:
        return True
    return product.application == Application.PLUM and product.amount_cents > 0


@dataclass(frozen=True)
class Purchase:
    """A paid online sale and the action list entry that writes it at the next tap."""

    payment: OnlinePayment
    sale: Sale
    action: CardAction


def purchase(
    session: Session,
    provider: PaymentProvider,
    account: HolderAccount,
    holder: Holder,
    *,
    serial: str,
    product_code: int,
    amount_cents: int | None,
    means: str,
) -> Purchase:
    """Buy a pass or reload the wallet online: pay, then record the sale as an action for the card.

    Everything that could refuse the sale is checked before the payment is taken. A declined
    payment is recorded (status ``declined``) and raises; the caller commits it first.

    Raises:
        NotFound: not a card of this holder, or no such product.
        Conflict: the card is not active or does not carry the product's application.
        InvalidRequest: a product not sold online, a bad reload amount.
        PaymentDeclined: the provider refused the payment.
    """
    card = card_of(session, holder, serial)
    product = products.get_product(session, product_code)
    if not _sold_online(product):
        raise InvalidRequest(
            "ce produit ne se vend pas en ligne", f"product {product_code} is not sold online"
        )
    if card.status != CardStatus.ACTIVE:
        raise Conflict(
            f"la carte {card.serial} est {STATUS_LABELS[card.status]} : achat impossible",
            f"card {card.serial} is {card.status.value}",
        )
    if product.application not in cards.applications_of(card):
        raise Conflict(
            f"la carte ne porte pas l'application {APPLICATION_LABELS[product.application]}",
            f"card does not carry {product.application.value}",
        )
    if product.application == Application.WALLET:
        if amount_cents is None or not 100 <= amount_cents <= MAX_ONLINE_RELOAD_CENTS:
            raise InvalidRequest(
                "montant du rechargement : entre 1 € et 150 €",
                "reload amount must be between 1 and 150 euros",
            )
        amount = amount_cents
    else:
        amount = product.amount_cents
    try:
        paid = provider.charge(
            amount_cents=amount, description=f"{product.name} ({card.serial})", means=means
        )
    except PaymentDeclined:
        session.add(
            OnlinePayment(
                holder_id=holder.id,
                paid_by_holder_id=account.holder_id,
                card_serial=card.serial,
                product_code=product.code,
                amount_cents=amount,
                provider=provider.name,
                provider_ref="",
                status="declined",
                created_at=utcnow(),
            )
        )
        _audit(
            session, account, "holder.payment_declined", f"card:{card.serial}", "paiement refusé"
        )
        session.flush()
        raise
    load = products.load_product(
        session,
        card_serial=card.serial,
        product_code=product.code,
        channel="online",
        sold_by=f"holder:{account.id}",
        amount_cents=amount if product.application == Application.WALLET else None,
    )
    sale = load.sale
    assert sale is not None, "load_product records the sale of an online purchase"
    payment = OnlinePayment(
        holder_id=holder.id,
        paid_by_holder_id=account.holder_id,
        card_serial=card.serial,
        product_code=product.code,
        amount_cents=amount,
        provider=paid.provider,
        provider_ref=paid.reference,
        status="paid",
        created_at=utcnow(),
        sale_id=sale.id,
    )
    session.add(payment)
    session.flush()
    _audit(
        session,
        account,
        "holder.purchase",
        f"card:{card.serial}",
        f"achat en ligne {product.name} ({amount} c)",
    )
    return Purchase(payment=payment, sale=sale, action=load.action)


def _preferences(session: Session, holder: Holder) -> HolderAccount:
    account = session.scalar(select(HolderAccount).where(HolderAccount.holder_id == holder.id))
    if account is None:  # a ward without an account of their own: the preference lives here
        account = HolderAccount(holder_id=holder.id, created_at=utcnow(), keep_trip_history=False)
        session.add(account)
        session.flush()
    return account


def set_trip_history(
    session: Session,
    account: HolderAccount,
    holder: Holder,
    keep: bool,
    *,
    now: datetime | None = None,
) -> HolderAccount:
    """Opt in or out of keeping the holder's own trips (opting out deletes the kept ones)."""
    now = now or utcnow()
    preferences = _preferences(session, holder)
    if keep and not preferences.keep_trip_history:
        preferences.keep_trip_history = True
        preferences.history_since = now
    elif not keep:
        preferences.keep_trip_history = False
        preferences.history_since = None
        history.forget_kept_trips(session, holder.id)
    session.flush()
    _audit(
        session,
        account,
        "holder.history_on" if keep else "holder.history_off",
        f"holder:{holder.id}",
        "historique conservé" if keep else "historique effacé",
    )
    return preferences


def export(
    session: Session,
    account: HolderAccount,
    holder: Holder,
    settings: HolderSettings,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything the backend holds about the holder, as JSON (right of access, GDPR art. 15)."""
    now = now or utcnow()
    view = overview(session, account, holder, settings, now=now)
    holder_cards = cards.cards_of_holder(session, holder.id)
    serials = [c.serial for c in holder_cards]
    card_ids = [c.id for c in holder_cards]
    sales = session.scalars(select(Sale).where(Sale.card_id.in_(card_ids)).order_by(Sale.id))
    payments = session.scalars(
        select(OnlinePayment).where(OnlinePayment.holder_id == holder.id).order_by(OnlinePayment.id)
    )
    grants = session.scalars(select(SchoolAid).where(SchoolAid.holder_id == holder.id))
    own_actions = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.role == HOLDER_ROLE,
            or_(
                AuditEntry.subject.in_([f"holder:{holder.id}"] + [f"card:{s}" for s in serials]),
                AuditEntry.agent == f"holder:{account.id}",
            ),
        )
        .order_by(AuditEntry.id)
    )
    _audit(session, account, "holder.export", f"holder:{holder.id}", "téléchargement des données")
    return {
        "format": "regioncard.holder-export/1",
        "exported_at": now.isoformat(),
        "holder": {
            "holder_id": holder.id,
            "family_name": holder.family_name,
            "given_name": holder.given_name,
            "birth_date": holder.birth_date.isoformat() if holder.birth_date else None,
            "email": holder.email,
            "phone": holder.phone,
            "postal_address": holder.postal_address,
            "created_at": holder.created_at.isoformat(),
        },
        "account": {
            "login": account.login,
            "created_at": account.created_at.isoformat(),
            "oidc_issuer": account.oidc_issuer,
        },
        "cards": view["cards"],
        "all_card_actions": [
            _action_out(a) | {"card_serial": s}
            for s in serials
            for a in actions.actions_of_card(session, s)
        ],
        "sales": [
            {
                "sale_id": s.id,
                "product_id": s.product_id,
                "amount_cents": s.amount_cents,
                "channel": s.channel,
                "sold_at": s.sold_at.isoformat(),
            }
            for s in sales
        ],
        "online_payments": [
            {
                "amount_cents": p.amount_cents,
                "product_code": p.product_code,
                "card_serial": p.card_serial,
                "provider": p.provider,
                "provider_ref": p.provider_ref,
                "status": p.status,
                "created_at": p.created_at.isoformat(),
            }
            for p in payments
        ],
        "school_aid": [
            {
                "school_year": g.school_year,
                "purpose": g.purpose.value,
                "funder": g.funder,
                "amount_cents": g.amount_cents,
                "granted_at": g.granted_at.isoformat(),
            }
            for g in grants
        ],
        "employment_rights": view["rights"],
        "consultations": view["consultations"],
        "own_actions": [
            {"at": e.at.isoformat(), "action": e.action, "subject": e.subject} for e in own_actions
        ],
        "trip_history": view["trip_history"],
        "school_uai": view["school_uai"],
        "taps": "les passages sont conservés sous pseudonyme, sans lien avec votre carte au-delà "
        "de 48 heures : ils ne figurent pas ici, sauf si vous avez demandé à garder votre "
        "historique",
    }
