"""``/holder/`` (the page) and ``/api/v1/holder`` (its API).

Who calls what:

- desk agents and supervisors: ``POST /api/v1/holder/activation-codes``,
  ``POST /api/v1/holder/guardians``;
- anyone: ``GET /api/v1/holder/config``, ``POST /api/v1/holder/activate``,
  ``POST /api/v1/holder/login``;
- the signed-in holder (``?holder_id=`` for a ward's page): ``GET /api/v1/holder/me``,
  ``POST /api/v1/holder/cards/{serial}/block``, ``POST /api/v1/holder/purchases``,
  ``PUT /api/v1/holder/trip-history``, ``GET /api/v1/holder/export``;
- browsers: ``GET /holder/``, ``/holder/static/{name}``, ``/holder/oidc/login``,
  ``/holder/oidc/callback``.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.auth.dependencies import AgentPrincipal, require_agent
from backend.auth.roles import AgentRole
from backend.columns import utcnow
from backend.dependencies import KeysDep, SessionDep, SettingsDep
from backend.errors import AuthenticationFailed, InvalidRequest, NotFound
from backend.holderpage import oidc, service
from backend.holderpage.models import HolderAccount
from backend.holderpage.payments import PaymentDeclined, provider_named
from backend.holderpage.schemas import (
    ActivateIn,
    ActivationCodeIn,
    ActivationCodeOut,
    BlockIn,
    ConfigOut,
    GuardianIn,
    GuardianOut,
    LoginIn,
    PurchaseIn,
    PurchaseOut,
    TokenOut,
    TripHistoryIn,
)
from backend.holderpage.security import issue_holder_token, read_holder_token, token_expiry
from backend.holderpage.settings import HolderSettings, holder_settings
from backend.pages import package_text, page_headers, static_file
from backend.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["holder page"])
API = "/api/v1/holder"

Writer = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.AGENT, AgentRole.SUPERVISOR))]
HolderSettingsDep = Annotated[HolderSettings, Depends(holder_settings)]
WardId = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="a ward's holder id")]

_bearer = HTTPBearer(auto_error=False, scheme_name="holder", description="Holder session token")

PACKAGE = "backend.holderpage"
PAGE_HEADERS = page_headers()
STATIC_FILES = {
    "holder.js": "text/javascript; charset=utf-8",
    "holder.css": "text/css; charset=utf-8",
}


def current_account(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> HolderAccount:
    """The signed-in holder's account (401 without a valid holder token)."""
    if credentials is None:
        raise AuthenticationFailed("connectez-vous", "sign in first (Authorization: Bearer ...)")
    claims = read_holder_token(settings.jwt_secret_value(), credentials.credentials)
    account = session.get(HolderAccount, claims.account_id)
    if account is None or account.holder_id != claims.holder_id:
        raise AuthenticationFailed("session invalide, reconnectez-vous", "unknown account")
    return account


Account = Annotated[HolderAccount, Depends(current_account)]


def _token(settings: Settings, hsettings: HolderSettings, account: HolderAccount) -> TokenOut:
    token = issue_holder_token(
        settings.jwt_secret_value(),
        account.id,
        account.holder_id,
        now=utcnow(),
        lifetime=timedelta(minutes=hsettings.token_minutes),
    )
    return TokenOut(access_token=token, expires_at=token_expiry(token))


# -- desk side ----------------------------------------------------------------------------------
@router.post(f"{API}/activation-codes", response_model=ActivationCodeOut, status_code=201)
def activation_code(
    body: ActivationCodeIn, session: SessionDep, hsettings: HolderSettingsDep, agent: Writer
) -> ActivationCodeOut:
    """A one-time code the agent hands to the holder to open their page (audited)."""
    code, row = service.issue_activation_code(
        session, agent, body.holder_id, body.reason, hsettings
    )
    return ActivationCodeOut(holder_id=row.holder_id, code=code, expires_at=row.expires_at)


@router.post(f"{API}/guardians", response_model=GuardianOut, status_code=201)
def guardian(body: GuardianIn, session: SessionDep, agent: Writer) -> GuardianOut:
    """Record that a holder is a minor's legal guardian (audited)."""
    link = service.grant_guardian(
        session, agent, body.guardian_holder_id, body.ward_holder_id, body.reason
    )
    return GuardianOut(
        guardian_holder_id=link.guardian_holder_id,
        ward_holder_id=link.ward_holder_id,
        granted_at=link.granted_at,
    )


# -- sign-in --------------------------------------------------------------------------------------
@router.get(f"{API}/config", response_model=ConfigOut)
def config(hsettings: HolderSettingsDep) -> ConfigOut:
    """What the sign-in page offers."""
    return ConfigOut(
        oidc_enabled=hsettings.oidc_enabled,
        oidc_label=hsettings.oidc_label,
        payment_provider=hsettings.payment_provider,
    )


@router.post(f"{API}/activate", response_model=TokenOut, status_code=201)
def activate(
    body: ActivateIn, session: SessionDep, settings: SettingsDep, hsettings: HolderSettingsDep
) -> TokenOut:
    """Open the page with the desk's one-time code; answers a session token."""
    account = service.activate(session, body.code, body.login, body.password)
    return _token(settings, hsettings, account)


@router.post(f"{API}/login", response_model=TokenOut)
def login(
    body: LoginIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    hsettings: HolderSettingsDep,
) -> TokenOut:
    """Sign in; repeated failures per login or per client are refused with 429 (audited)."""
    client = request.client.host if request.client else "unknown"
    result = service.attempt_login(session, body.login, body.password, client, hsettings)
    if result.outcome == service.LoginOutcome.OK and result.account is not None:
        return _token(settings, hsettings, result.account)
    session.commit()  # the failure and its audit row stay, although the request fails
    if result.outcome == service.LoginOutcome.THROTTLED:
        raise service.throttled_error(hsettings)
    raise AuthenticationFailed("identifiant ou mot de passe incorrect", "wrong login or password")


def _oidc_meta(request: Request, hsettings: HolderSettings) -> oidc.ProviderMetadata:
    if not hsettings.oidc_enabled or not hsettings.oidc_issuer:
        raise NotFound(
            "connexion par fournisseur d'identité non configurée", "OIDC sign-in not configured"
        )
    cache: dict[str, oidc.ProviderMetadata] | None = getattr(
        request.app.state, "holder_oidc_metadata", None
    )
    if cache is None:
        cache = request.app.state.holder_oidc_metadata = {}
    meta = cache.get(hsettings.oidc_issuer)
    if meta is None:
        meta = oidc.discover(hsettings.oidc_issuer)
        cache[hsettings.oidc_issuer] = meta
    return meta


def _back_to_page(fragment: dict[str, str]) -> RedirectResponse:
    answer = RedirectResponse("/holder/#" + urllib.parse.urlencode(fragment), status_code=303)
    answer.delete_cookie(oidc.STATE_COOKIE, path="/holder/oidc")
    return answer


@router.get("/holder/oidc/login", include_in_schema=False)
def oidc_login(request: Request, settings: SettingsDep, hsettings: HolderSettingsDep) -> Response:
    """Send the browser to the identity provider."""
    try:
        meta = _oidc_meta(request, hsettings)
    except (oidc.OIDCError, NotFound) as exc:
        return _back_to_page({"erreur": exc.message_fr})
    start = oidc.start_login(meta, hsettings, settings.jwt_secret_value(), utcnow())
    answer = RedirectResponse(start.redirect_url, status_code=303)
    answer.set_cookie(
        oidc.STATE_COOKIE,
        start.cookie,
        max_age=600,
        path="/holder/oidc",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return answer


@router.get("/holder/oidc/callback", include_in_schema=False)
def oidc_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    hsettings: HolderSettingsDep,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Back from the identity provider: sign in, or go back to the page with the reason."""
    if error or not code or not state:
        return _back_to_page({"erreur": "connexion annulée auprès du fournisseur d'identité"})
    try:
        meta = _oidc_meta(request, hsettings)
        identity = oidc.finish_login(
            meta,
            hsettings,
            settings.jwt_secret_value(),
            code=code,
            state=state,
            cookie=request.cookies.get(oidc.STATE_COOKIE),
        )
    except (oidc.OIDCError, NotFound) as exc:
        log.warning("OIDC sign-in refused: %s", exc.message_en)
        return _back_to_page({"erreur": exc.message_fr})
    account = service.account_for_identity(
        session,
        issuer=identity.issuer,
        sub=identity.sub,
        given_name=identity.given_name,
        family_name=identity.family_name,
        birthdate=identity.birthdate,
    )
    if account is None:
        return _back_to_page(
            {
                "erreur": "aucun dossier ne correspond à cette identité : présentez-vous au "
                "guichet avec une pièce d'identité"
            }
        )
    token = _token(settings, hsettings, account)
    return _back_to_page({"jeton": token.access_token})


# -- the holder's own page ------------------------------------------------------------------------
@router.get(f"{API}/me")
def me(
    session: SessionDep, account: Account, hsettings: HolderSettingsDep, holder_id: WardId = None
) -> dict[str, Any]:
    """Cards, balances, pending loads, aid, rights, consultations, menu, kept trips."""
    holder = service.subject_holder(session, account, holder_id)
    return service.overview(session, account, holder, hsettings)


@router.post(f"{API}/cards/{{serial}}/block")
def block(
    serial: str,
    body: BlockIn,
    session: SessionDep,
    keys: KeysDep,
    account: Account,
    holder_id: WardId = None,
) -> dict[str, Any]:
    """Block a lost or stolen card at once (deny-listed at the next push)."""
    holder = service.subject_holder(session, account, holder_id)
    if not body.confirm:
        service.card_of(session, holder, serial)
        raise InvalidRequest("confirmez le blocage de la carte", "confirm=true is required")
    card, cancelled = service.block_own_card(session, keys, account, holder, serial)
    return {
        "serial": card.serial,
        "status": card.status.value,
        "cancelled_loads": len(cancelled),
        "message": f"Carte {card.serial} bloquée : elle sera refusée aux bornes dès leur "
        "prochaine mise à jour. Une nouvelle carte se demande au guichet.",
    }


@router.post(f"{API}/purchases", response_model=PurchaseOut, status_code=201)
def purchase(
    body: PurchaseIn,
    session: SessionDep,
    account: Account,
    hsettings: HolderSettingsDep,
    holder_id: WardId = None,
) -> PurchaseOut:
    """Pay online; the sale becomes an action list entry written at the card's next tap."""
    holder = service.subject_holder(session, account, holder_id)
    provider = provider_named(hsettings.payment_provider)
    try:
        done = service.purchase(
            session,
            provider,
            account,
            holder,
            serial=body.card_serial,
            product_code=body.product_code,
            amount_cents=body.amount_cents,
            means=body.payment_means,
        )
    except PaymentDeclined:
        session.commit()  # the declined payment stays on record
        raise
    return PurchaseOut(
        payment_reference=done.payment.provider_ref,
        provider=done.payment.provider,
        amount_cents=done.payment.amount_cents,
        action_id=done.action.id,
        action_status=done.action.status.value,
        message="Paiement accepté : le chargement sera écrit sur la carte à son prochain passage "
        "à une borne, un valideur ou une caisse.",
    )


@router.put(f"{API}/trip-history")
def trip_history(
    body: TripHistoryIn, session: SessionDep, account: Account, holder_id: WardId = None
) -> dict[str, Any]:
    """Opt in or out of keeping one's own trips (opting out deletes them)."""
    holder = service.subject_holder(session, account, holder_id)
    preferences = service.set_trip_history(session, account, holder, body.keep)
    return {
        "keep": preferences.keep_trip_history,
        "since": preferences.history_since.isoformat() if preferences.history_since else None,
    }


@router.get(f"{API}/export")
def export(
    session: SessionDep, account: Account, hsettings: HolderSettingsDep, holder_id: WardId = None
) -> Response:
    """Everything held about the holder, as a JSON file (right of access)."""
    holder = service.subject_holder(session, account, holder_id)
    doc = service.export(session, account, holder, hsettings)
    return JSONResponse(
        json.loads(json.dumps(doc, ensure_ascii=False)),
        headers={
            "Content-Disposition": f'attachment; filename="mes-donnees-carte-{holder.id}.json"',
            "Cache-Control": "no-store",
        },
    )


# -- the page -----------------------------------------------------------------------------------
@router.get("/holder", include_in_schema=False)
@router.get("/holder/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The holder's page (French); everything else is the JSON API, called by ``holder.js``."""
    return HTMLResponse(package_text(PACKAGE, "static", "holder.html"), headers=PAGE_HEADERS)


@router.get("/holder/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The page's script and style sheet (listed: nothing else is served)."""
    return static_file(PACKAGE, STATIC_FILES, name)
