"""The OpenAPI document as the API really answers: every error response, with the real body.

FastAPI documents a ``422`` with its own ``{"detail": [...]}`` body, which this API never sends,
and none of the other errors. :func:`install` replaces the app's ``openapi()`` with one where every
operation lists 401, 403, 404, 409, 413, 422, 429 and 503 with the body of
:func:`backend.app.error_body` (:data:`ERROR_SCHEMA`: ``error``, ``message``, ``message_fr``,
``message_en``, and ``details`` for a 422); an operation that documented one of these codes with
its own body (the upload acknowledgement) accepts either. The property-based API fuzzer
(``tests/backend/test_backend_fuzz.py``) checks every answer against this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA_NAME = "ErrorBody"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "description": "Every refusal: a code, then the message in French (for the agent) and English.",
    "required": ["error", "message", "message_fr", "message_en"],
    "properties": {
        "error": {"type": "string", "examples": ["not_found"]},
        "message": {"type": "string", "description": "« français / English »"},
        "message_fr": {"type": "string", "examples": ["porteur 12 inconnu"]},
        "message_en": {"type": "string", "examples": ["unknown holder 12"]},
        "details": {
            "type": "array",
            "description": "422 only: the fields at fault",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

ERROR_DESCRIPTIONS = {
    "400": "corps illisible / unreadable body",
    "401": "authentification requise ou invalide / authentication required or invalid",
    "403": "rôle ou type de terminal non permis / role or terminal kind not allowed",
    "404": "introuvable / not found",
    "409": "contredit l'état actuel / conflicts with the current state",
    "413": "requête trop volumineuse / request too large",
    "422": "requête invalide (champs en cause dans details) / invalid request",
    "429": "trop de tentatives : attendre Retry-After / too many attempts",
    "503": "base de données ou HSM indisponible : réessayer après Retry-After / retry later",
}
ALWAYS = ("400", "401", "403", "404", "409", "413", "422", "429", "503")


def _error_response(existing: dict[str, Any] | None, code: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    own = (existing or {}).get("content", {}).get("application/json", {}).get("schema")
    if own is not None and own.get("$ref", "").endswith("/HTTPValidationError"):
        own = None  # FastAPI's {detail} body: never sent
    schema = ref if own is None else {"anyOf": [own, ref]}
    description = (existing or {}).get("description") or ERROR_DESCRIPTIONS[code]
    if own is None and existing is not None and code == "422":
        description = ERROR_DESCRIPTIONS[code]
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with every operation's error responses documented (in place, and returned)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in ALWAYS:
                responses[code] = _error_response(responses.get(code), code)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return spec


def install(app: FastAPI) -> None:
    """Serve the documented spec at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
