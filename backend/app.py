"""The backend application: :func:`create_app` builds a FastAPI app from a :class:`Settings`.

Every domain router is listed here. The upload and reconciliation routers are built separately and
found by module name: while one is not written yet, the app starts without it.

Errors are answered as JSON ``{"error", "message", "message_fr", "message_en"}`` (French first:
desk agents read them), never as a 5xx for a bad request:

- request validation (malformed JSON, wrong types, missing fields) -> 422 with the fields at fault;
- :class:`~backend.errors.BackendError` -> its own 4xx status;
- any other deliberate :class:`~card_schema.errors.RegionCardError` (a card record that does not
  encode, a bad signature) -> 422;
- a body larger than ``settings.max_body_bytes`` -> 413, checked before the body is read.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import openapi
from backend.db import make_engine, make_sessionmaker
from backend.errors import AuthenticationFailed, BackendError
from backend.errors_fr import validation_errors_fr
from backend.settings import Settings
from card_schema.errors import RegionCardError

log = logging.getLogger(__name__)

# Routers of this package, in the order of the OpenAPI document.
DOMAIN_ROUTERS = (
    "backend.auth.router",
    "backend.terminals.router",
    "backend.holders.router",
    "backend.cards.router",
    "backend.products.router",
    "backend.entitlements.router",
    "backend.denylists.router",
    "backend.actions.router",
    "backend.tariffs.router",
    "backend.personalisation.router",
    "backend.privacy.router",
    "backend.audit.router",
    "backend.desk.router",
    "backend.backoffice.router",
    "backend.holderpage.router",
    "backend.partners.router",
)
# Routers built by the upload / validation engineer; absent until written.
OPTIONAL_ROUTERS = (
    "backend.uploads.router",
    "backend.reconciliation.router",
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


DATABASE_RETRY_AFTER_S = 5  # Retry-After of a 503 when the database is unavailable


def error_body(code: str, message_fr: str, message_en: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {
        "error": code,
        "message": f"{message_fr} / {message_en}",
        "message_fr": message_fr,
        "message_en": message_en,
        **extra,
    }


class BodySizeLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, before the app reads them.

    The ``Content-Length`` header is checked first; a body without one (chunked) is read up to the
    limit and replayed to the app.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _too_large(self, send: Send) -> None:
        body = error_body(
            "payload_too_large",
            f"requête trop volumineuse (plus de {self.limit} octets)",
            f"request body larger than {self.limit} bytes",
        )
        response = JSONResponse(body, status_code=413)
        await response({"type": "http"}, _empty_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit or declared < 0:
                    await self._too_large(send)
                    return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit, then replay what was read.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        out.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return out


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            fr, en = "JSON mal formé", "malformed JSON body"
        else:
            where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
            en = f"invalid request ({where})"
        fr_sentence, fields = validation_errors_fr(exc.errors())
        if not any(e["type"] == "json_invalid" for e in errors):
            fr = fr_sentence
        return JSONResponse(
            error_body("invalid_request", fr, en, details=errors, fields=fields), 422
        )

    @app.exception_handler(BackendError)
    async def backend_error(_: Request, exc: BackendError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationFailed) else None
        extra = (
            {"fields": [{"field": exc.field, "message_fr": exc.message_fr}]} if exc.field else {}
        )
        headers = getattr(exc, "headers", None) or headers  # Retry-After of a 429
        return JSONResponse(
            error_body(exc.code, exc.message_fr, exc.message_en, **extra),
            exc.status_code,
            headers=headers,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)  # no pooled connection free in time: busy, not broken
    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database is restarting, unreachable or locked. The caller learns it in words and
        # with a Retry-After instead of a bare 500: terminals retry their uploads (idempotent,
        # docs/batch-format.md), the desk station and page their calls. Only the driver's
        # message is logged: the statement and its parameters may name a card.
        orig = getattr(exc, "orig", None) or exc
        first_line = (str(orig).splitlines() or [""])[0][:200]
        log.error("database unavailable: %s: %s", type(orig).__name__, first_line)
        return JSONResponse(
            error_body(
                "database_unavailable",
                "base de données momentanément indisponible : réessayez dans un instant",
                "database unavailable: try again shortly",
            ),
            503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(RegionCardError)
    async def region_card_error(_: Request, exc: RegionCardError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_request", f"refusé : {exc}", f"refused: {exc}"), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        texts = {
            404: ("ressource introuvable", "not found"),
            400: ("corps de requête illisible", "unreadable request body"),
            405: ("méthode non permise", "method not allowed"),
        }
        fr, en = texts.get(exc.status_code, (str(exc.detail), str(exc.detail)))
        return JSONResponse(
            error_body(f"http_{exc.status_code}", fr, en),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )


def _include_routers(app: FastAPI) -> list[str]:
    included = []
    for name in DOMAIN_ROUTERS + OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            # Skip only when that router (or its package) is not written yet, never when one of
            # its own imports is missing: that is a real fault and must surface.
            if name in OPTIONAL_ROUTERS and (name == missing or name.startswith(missing + ".")):
                log.info("router %s not present, skipped", name)
                continue
            raise
        app.include_router(module.router)
        included.append(name)
    return included


def create_app(
    settings: Settings | None = None,
    *,
    keys: Any | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """Build the backend application.

    Args:
        settings: configuration (``Settings()`` from the environment if omitted).
        keys: a :class:`~backend.keys.service.KeyService`; opened from ``settings`` if omitted
            (and closed with the app).
        engine: database engine; made from ``settings.database_url`` if omitted.

    Returns:
        The app; OpenAPI at ``/openapi.json``, interactive docs at ``/docs``.
    """
    from backend.keys.service import KeyService
    from backend.migrate import upgrade

    settings = settings or Settings()
    own_keys = keys is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        if own_keys:
            app.state.keys.close()

    if settings.auto_migrate and settings.database_url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url)
    app = FastAPI(
        title="Carte régionale Hauts-de-France — backend",
        version="1.0",
        description=(
            "Émission, listes d'opposition, listes d'actions, clés, vie privée, audit. "
            "Issuance, deny-lists, action lists, keys, privacy and audit of the unified regional "
            "card. Desk agents authenticate with OAuth2 (password flow); terminals with their "
            "credential and the X-Regioncard-Terminal header."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: no CDN (docs/backend.md)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.keys = keys if keys is not None else KeyService.open(settings)
    _install_error_handlers(app)
    app.state.routers = _include_routers(app)
    openapi.install(app)  # every error response documented with its real body
    openapi.serve_docs_offline(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)

    @app.get(
        "/healthz",
        tags=["meta"],
        responses={503: {"description": "the database or the HSM is down (same body)"}},
    )
    def health() -> JSONResponse:
        """Health of the service and of what it depends on (no authentication): the database
        (one ``SELECT 1``) and the PKCS#11 token (one signature by the table-signing key).
        200 when both answer, 503 when either does not, with the reason in French."""
        checks: dict[str, str] = {}
        try:
            with app.state.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any failure is "down": this endpoint must always answer
            log.warning("health: database down: %s", (str(exc).splitlines() or [""])[0][:200])
            checks["database"] = "indisponible / unavailable"
        try:
            app.state.keys.sign_table(b"healthz")  # a real operation inside the token
            checks["hsm"] = "ok"
        except Exception as exc:
            log.warning("health: HSM down: %s", (str(exc).splitlines() or [""])[0][:200])
            checks["hsm"] = "indisponible / unavailable"
        healthy = all(value == "ok" for value in checks.values())
        body: dict[str, Any] = {"status": "ok" if healthy else "degraded", **checks}
        if not healthy:
            down = [name for name, value in checks.items() if value != "ok"]
            names = {"database": "base de données", "hsm": "module de sécurité (HSM)"}
            body["message_fr"] = "indisponible : " + ", ".join(names[d] for d in down)
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app
