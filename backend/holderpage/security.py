"""Secrets of the holder's page: argon2id password hashes, one-time codes, holder session tokens.

- Passwords: argon2id through argon2-cffi (RFC 9106 parameters of its ``PasswordHasher``).
- One-time activation codes: 12 characters of an unambiguous alphabet (60 bits), shown once to the
  desk agent who hands them to the holder; only SHA-256 is stored (a high-entropy secret that is
  used once and expires needs no slow hash).
- Session tokens: JWT HS256 with ``typ`` ``regioncard.holder`` under the backend's JWT secret, so
  an agent token is never accepted as a holder token nor the reverse.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.errors import AuthenticationFailed

HOLDER_TOKEN_TYPE = "regioncard.holder"
_JWT_ALG = "HS256"
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 12
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salt and parameters inside the string)."""
    return _hasher.hash(password)


def password_matches(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches the stored argon2 hash (constant time inside argon2)."""
    if not stored:
        # Same work as a real check, so a missing account is not told apart by timing.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_activation_code() -> str:
    """A fresh one-time code, grouped by four for reading aloud: ``ABCD-EFGH-JKLM``."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def code_digest(code: str) -> str:
    """SHA-256 (hex) of a code, spaces, dashes and case ignored."""
    canonical = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(canonical.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class HolderClaims:
    """What a holder token asserts."""

    account_id: int
    holder_id: int


def issue_holder_token(
    secret: str, account_id: int, holder_id: int, *, now: datetime, lifetime: timedelta
) -> str:
    """A signed session token for a holder account."""
    claims = {
        "sub": str(account_id),
        "hid": holder_id,
        "typ": HOLDER_TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=_JWT_ALG)


def read_holder_token(secret: str, token: str) -> HolderClaims:
    """Verify a holder token and return its claims.

    Raises:
        AuthenticationFailed: bad signature, expired, or not a holder token.
    """
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_JWT_ALG], options={"require": ["sub", "exp", "iat"]}
        )
        if claims.get("typ") != HOLDER_TOKEN_TYPE:
            raise jwt.InvalidTokenError("not a holder token")
        return HolderClaims(account_id=int(claims["sub"]), holder_id=int(claims["hid"]))
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationFailed(
            "session expirée, reconnectez-vous", "session expired, sign in again"
        ) from exc
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
        raise AuthenticationFailed("session invalide, reconnectez-vous", "invalid token") from exc


def token_expiry(token: str) -> datetime:
    """The expiry written in a token we just issued (not verified: for display only)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return datetime.fromtimestamp(int(claims["exp"]), UTC)
