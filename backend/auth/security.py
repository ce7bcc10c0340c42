"""Secrets handling for authentication: password hashes, agent JWTs, terminal credentials.

- Agent passwords: scrypt (RFC 7914, standard library), ``scrypt$n$r$p$salt$hash`` in base64.
- Agent tokens: JWT HS256 (RFC 7519) with ``sub``, ``role``, ``iat``, ``exp``; short-lived.
- Terminal credentials: 256 random bits with a ``rct_`` prefix (so a terminal credential sent to a
  desk endpoint is recognised and refused with a clear message). High-entropy secrets need no slow
  hash: SHA-256 is stored, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from backend.auth.roles import AgentRole
from backend.errors import AuthenticationFailed

TERMINAL_CREDENTIAL_PREFIX = "rct_"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_JWT_ALG = "HS256"
_JWT_TYPE = "regioncard.agent"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, self-describing (parameters included)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> None:
    """Check ``password`` against a stored hash in constant time.

    Raises:
        AuthenticationFailed: the password does not match (or the hash is unreadable).
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        candidate = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
        ok = hmac.compare_digest(candidate, base64.b64decode(digest))
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise AuthenticationFailed(
            "identifiant ou mot de passe incorrect", "wrong user name or password"
        )


@dataclass(frozen=True)
class AgentClaims:
    """What an agent token asserts."""

    username: str
    role: AgentRole
    expires_at: datetime


def issue_agent_token(
    secret: str, username: str, role: AgentRole, *, now: datetime, lifetime: timedelta
) -> str:
    """A signed JWT for an agent."""
    claims = {
        "sub": username,
        "role": role.value,
        "typ": _JWT_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=_JWT_ALG)


def read_agent_token(secret: str, token: str) -> AgentClaims:
    """Verify an agent JWT (signature, expiry, type) and return its claims.

    Raises:
        AuthenticationFailed: bad signature, expired, or not an agent token.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_JWT_ALG],
            options={"require": ["sub", "role", "exp", "iat"]},
        )
        if claims.get("typ") != _JWT_TYPE:
            raise jwt.InvalidTokenError("not an agent token")
        return AgentClaims(
            username=str(claims["sub"]),
            role=AgentRole(claims["role"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationFailed(
            "session expirée, reconnectez-vous", "token expired, log in again"
        ) from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise AuthenticationFailed("jeton invalide", "invalid token") from exc


def new_terminal_credential() -> str:
    """A fresh terminal credential (shown once at registration, stored hashed)."""
    return TERMINAL_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def hash_terminal_credential(credential: str) -> str:
    """SHA-256 of a terminal credential, hex (the credential itself is never stored)."""
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


def credential_matches(credential: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented credential with a stored hash."""
    return hmac.compare_digest(hash_terminal_credential(credential), stored_hash)
