"""The OpenAPI document as the API really answers, and its pages served without any CDN.

**Offline pages.** FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN: on a
machine without Internet access (a station's back office) the page stayed blank.
:func:`serve_docs_offline` serves Swagger UI from the assets shipped in the ``fastapi-offline`` PyPI
package (Swagger UI 5, which renders OpenAPI 3.1), under ``/docs-assets``.

**Error responses.**

FastAPI documents a ``422`` with its own ``{"detail": [...]}`` body, which this API never sends,
and none of the other errors. :func:`install` replaces the app's ``openapi()`` with one where every
operation lists 401, 403, 404, 409, 413, 422, 429 and 503 with the body of
:func:`backend.app.error_body` (:data:`ERROR_SCHEMA`: ``error``, ``message``, ``message_fr``,
``message_en``, and ``details`` for a 422); an operation that documented one of these codes with
its own body (the upload acknowledgement) accepts either. The property-based API fuzzer
(``tests/backend/test_backend_fuzz.py``) checks every answer against this document.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

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


ASSETS_URL = "/docs-assets"


def docs_assets_dir() -> str:
    """The folder of the installed Swagger UI and ReDoc assets (package ``fastapi-offline``)."""
    return str(files("fastapi_offline") / "static")


def serve_docs_offline(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/docs/oauth2-redirect``, every asset local.

    ReDoc is not served: its page loads its logo from its vendor's CDN whatever the options.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    title = f"{app.title} — documentation"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
