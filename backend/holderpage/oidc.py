"""OpenID Connect sign-in for the holder's page (authorization code flow, PKCE, nonce).

Configured by ``REGIONCARD_HOLDER_OIDC_*`` (:class:`~backend.holderpage.settings.HolderSettings`);
written for FranceConnect's claims (``sub``, ``given_name``, ``family_name``, ``birthdate``,
``email``; scopes of the same names, ``acr_values=eidas1``), and usable with any conforming
provider. The state, nonce and PKCE verifier travel in a short-lived signed cookie, so no server
session is kept. The ID token is verified with the provider's published keys (PyJWT's JWKS
client): signature, issuer, audience, expiry, nonce; the claims come from the userinfo endpoint
(plain JSON, or a signed JWT as FranceConnect v2 answers), whose ``sub`` must be the ID token's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import jwt

from backend.errors import AuthenticationFailed
from backend.holderpage.settings import HolderSettings

STATE_COOKIE = "regioncard_oidc"
_STATE_TYPE = "regioncard.oidc-state"
_STATE_LIFETIME = timedelta(minutes=10)
_TIMEOUT_S = 10
_ALGORITHMS = ["RS256", "ES256", "PS256", "EdDSA"]


class OIDCError(AuthenticationFailed):
    """The identity provider's answer could not be used to sign in (reason in French first)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _get_json(url: str, *, headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as answer:
            return answer.headers.get_content_type(), answer.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OIDCError(
            "le fournisseur d'identité ne répond pas : réessayez plus tard",
            f"identity provider unreachable: {exc}",
        ) from exc


@dataclass(frozen=True)
class ProviderMetadata:
    """The endpoints a provider publishes at ``/.well-known/openid-configuration``."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


def discover(issuer: str) -> ProviderMetadata:
    """Read the provider's metadata (its ``issuer`` must be the configured one).

    Raises:
        OIDCError: unreachable, unreadable or for another issuer.
    """
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    _, raw = _get_json(url)
    try:
        doc = json.loads(raw)
        meta = ProviderMetadata(
            issuer=str(doc["issuer"]),
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            userinfo_endpoint=str(doc["userinfo_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise OIDCError(
            "configuration du fournisseur d'identité illisible", "unreadable provider metadata"
        ) from exc
    if meta.issuer.rstrip("/") != issuer.rstrip("/"):
        raise OIDCError("fournisseur d'identité inattendu", f"issuer mismatch: {meta.issuer}")
    return meta


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and the signed cookie that remembers the attempt."""

    redirect_url: str
    cookie: str


def start_login(
    meta: ProviderMetadata, settings: HolderSettings, secret: str, now: datetime
) -> LoginStart:
    """The authorization request (code flow with PKCE S256, state and nonce)."""
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)  # RFC 7636: 43 to 128 characters
    challenge = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id or "",
        "redirect_uri": settings.oidc_redirect_uri or "",
        "scope": settings.oidc_scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if settings.oidc_acr_values:
        query["acr_values"] = settings.oidc_acr_values
    cookie = jwt.encode(
        {
            "typ": _STATE_TYPE,
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "exp": int((now + _STATE_LIFETIME).timestamp()),
        },
        secret,
        algorithm="HS256",
    )
    separator = "&" if "?" in meta.authorization_endpoint else "?"
    return LoginStart(
        redirect_url=meta.authorization_endpoint + separator + urllib.parse.urlencode(query),
        cookie=cookie,
    )


@dataclass(frozen=True)
class Identity:
    """The identity the provider asserted (FranceConnect's pivot claims and e-mail)."""

    issuer: str
    sub: str
    given_name: str
    family_name: str
    birthdate: date
    email: str | None


def _verify_jwt(token: str, meta: ProviderMetadata, audience: str) -> dict[str, Any]:
    try:
        key = jwt.PyJWKClient(meta.jwks_uri, timeout=_TIMEOUT_S).get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=_ALGORITHMS,
            audience=audience,
            issuer=meta.issuer,
            options={"require": ["exp", "iat", "sub"]},
        )
        return claims
    except (jwt.PyJWTError, ValueError) as exc:
        raise OIDCError(
            "réponse du fournisseur d'identité invalide", f"invalid token from provider: {exc}"
        ) from exc


def finish_login(
    meta: ProviderMetadata,
    settings: HolderSettings,
    secret: str,
    *,
    code: str,
    state: str,
    cookie: str | None,
) -> Identity:
    """Exchange the code, verify the ID token and read the claims.

    Raises:
        OIDCError: missing or mismatched state, a refused exchange, an invalid token, claims
            missing.
    """
    if not cookie:
        raise OIDCError("connexion expirée : recommencez", "no OIDC state cookie")
    try:
        remembered = jwt.decode(cookie, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError as exc:
        raise OIDCError("connexion expirée : recommencez", "bad or expired state") from exc
    if remembered.get("typ") != _STATE_TYPE or not hmac.compare_digest(
        str(remembered.get("state", "")), state
    ):
        raise OIDCError("connexion expirée : recommencez", "state mismatch")
    form = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": settings.oidc_redirect_uri or "",
            "client_id": settings.oidc_client_id or "",
            "client_secret": settings.oidc_client_secret.get_secret_value()
            if settings.oidc_client_secret
            else "",
            "code_verifier": str(remembered["verifier"]),
        }
    ).encode("ascii")
    request = urllib.request.Request(
        meta.token_endpoint,
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as answer:
            tokens = json.loads(answer.read())
        id_token, access_token = str(tokens["id_token"]), str(tokens["access_token"])
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise OIDCError(
            "le fournisseur d'identité a refusé la connexion",
            f"token endpoint: {exc.code} {detail}",
        ) from exc
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        raise OIDCError(
            "le fournisseur d'identité ne répond pas : réessayez plus tard", f"token: {exc}"
        ) from exc
    client_id = settings.oidc_client_id or ""
    claims = _verify_jwt(id_token, meta, client_id)
    if not hmac.compare_digest(str(claims.get("nonce", "")), str(remembered["nonce"])):
        raise OIDCError("réponse du fournisseur d'identité invalide", "nonce mismatch")
    content_type, raw = _get_json(
        meta.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
    )
    try:
        if content_type == "application/jwt":
            info = _verify_jwt(raw.decode("ascii"), meta, client_id)
        else:
            info = json.loads(raw)
        if str(info["sub"]) != str(claims["sub"]):
            raise ValueError("userinfo sub differs from the ID token's")
        return Identity(
            issuer=meta.issuer,
            sub=str(claims["sub"]),
            given_name=str(info["given_name"]),
            family_name=str(info["family_name"]),
            birthdate=date.fromisoformat(str(info["birthdate"])),
            email=str(info["email"]) if info.get("email") else None,
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise OIDCError(
            "identité incomplète : nom, prénom et date de naissance sont nécessaires",
            f"incomplete identity claims: {exc}",
        ) from exc
