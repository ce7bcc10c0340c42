"""Error family of the backend: every deliberate refusal, with its HTTP status and two messages.

Every class derives from :class:`card_schema.errors.RegionCardError`. Services raise them (they do
not know HTTP); :mod:`backend.app` translates them at the boundary into a JSON answer
``{"error": code, "message": "<fr> / <en>", "message_fr": ..., "message_en": ...}`` with the
class's status code. French comes first because desk agents read these messages.
"""

from __future__ import annotations

from card_schema.errors import RegionCardError, VerificationError


class BackendError(RegionCardError):
    """Root of the backend's deliberate errors.

    Attributes:
        status_code: HTTP status the API answers with.
        code: short machine-readable error name.
        message_fr: what happened, in French (for the desk agent).
        message_en: what happened, in English (for the operations log).
        field: the request field at fault, if one is (the pages show the message beside it).
    """

    status_code = 400
    code = "bad_request"

    def __init__(
        self, message_fr: str, message_en: str | None = None, *, field: str | None = None
    ) -> None:
        self.message_fr = message_fr
        self.field = field
        self.message_en = message_en if message_en is not None else message_fr
        super().__init__(message_fr if message_en is None else f"{message_fr} / {self.message_en}")


class InvalidRequest(BackendError):
    """The request is well formed but its content cannot be accepted."""

    status_code = 422
    code = "invalid_request"


class NotFound(BackendError):
    """The holder, card, product, terminal... named in the request does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(BackendError):
    """The request contradicts the current state (card already blocked, duplicate serial...)."""

    status_code = 409
    code = "conflict"


class WriteNotProven(Conflict):
    """An action-list write confirmed before the session that made it was uploaded and
    validated: not a refusal, the terminal confirms again once its batch went through."""

    code = "write_not_proven"


class AuthenticationFailed(BackendError):
    """No credentials, or credentials that do not identify an agent or a terminal."""

    status_code = 401
    code = "unauthenticated"


class Forbidden(BackendError):
    """The caller is authenticated but its role or device kind may not do this."""

    status_code = 403
    code = "forbidden"


class PayloadTooLarge(BackendError):
    """The request body (or an upload batch) exceeds the configured limit."""

    status_code = 413
    code = "payload_too_large"


class UnknownTerminalKey(BackendError, VerificationError):
    """No active public key with this key id is registered for this terminal (or it was revoked)."""

    status_code = 403
    code = "unknown_terminal_key"


class KeyStoreError(BackendError):
    """The PKCS#11 token is missing, locked, or lacks a key the backend needs."""

    status_code = 503
    code = "key_store_unavailable"
