"""The app: routers, OpenAPI, health, migrations up/down/up on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend import app as app_module
from backend.app import create_app
from backend.db import make_engine
from backend.errors import KeyStoreError
from backend.keys.service import KeyService
from backend.migrate import current, downgrade, upgrade
from backend.settings import Settings
from tests.backend.conftest import table_names

PLATFORM_TABLES = {
    "agents",
    "terminals",
    "terminal_keys",
    "holders",
    "cards",
    "card_applications",
    "products",
    "sales",
    "school_aids",
    "employment_rights",
    "deny_list_entries",
    "deny_list_versions",
    "card_actions",
    "card_links",
    "audit_entries",
}


def test_migrations_up_down_up(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0001_platform")
    assert table_names(empty_db_url) >= PLATFORM_TABLES
    assert current(empty_db_url) == {"0001_platform"}
    downgrade(empty_db_url, "base")
    assert not PLATFORM_TABLES & table_names(empty_db_url)
    assert current(empty_db_url) == set()
    upgrade(empty_db_url)
    assert table_names(empty_db_url) >= PLATFORM_TABLES


def test_health_and_openapi_document_every_domain(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "hsm": "ok"}
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for prefix in (
        "/api/v1/auth/token",
        "/api/v1/terminals",
        "/api/v1/holders",
        "/api/v1/cards",
        "/api/v1/products",
        "/api/v1/entitlements/school-aid",
        "/api/v1/deny-lists/full",
        "/api/v1/action-lists/current",
        "/api/v1/personalisation",
        "/api/v1/privacy/purge",
        "/api/v1/audit",
    ):
        assert prefix in paths, prefix
    schemes = spec["components"]["securitySchemes"]
    assert {"agent", "terminal", "terminal_id"} <= set(schemes)
    assert client.get("/docs").status_code == 200


def test_every_platform_router_is_included(app: FastAPI) -> None:
    assert set(app_module.DOMAIN_ROUTERS) <= set(app.state.routers)


def test_optional_router_absent_is_skipped_but_broken_import_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def fake_import(name: str) -> object:
        if name == "backend.uploads.router":
            raise ModuleNotFoundError("No module named 'backend.uploads'", name="backend.uploads")
        if name == "backend.reconciliation.router":
            raise ModuleNotFoundError("No module named 'numpy'", name="numpy")
        return real(name)

    monkeypatch.setattr(app_module.importlib, "import_module", fake_import)
    with pytest.raises(ModuleNotFoundError, match="numpy"):
        app_module._include_routers(FastAPI())


def test_migration_matches_the_models(db_url: str) -> None:
    """Autogenerate finds nothing to do for the platform tables: 0001 is what the models say."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from backend.models import load_all_models

    metadata = load_all_models()
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    def table_of(op: object) -> str | None:
        item = op[1] if isinstance(op, tuple) and len(op) > 1 else None
        name = getattr(item, "name", None) if getattr(item, "columns", None) is not None else None
        table = getattr(item, "table", None)
        if isinstance(op, tuple) and op[0] in ("add_column", "remove_column"):
            return str(op[2])
        return name or (table.name if table is not None else None)

    mine = [op for op in diff if not isinstance(op, list) and table_of(op) in PLATFORM_TABLES]
    assert mine == []


class _DeadToken:
    """A key service whose token stopped answering (the HSM is down)."""

    def sign_table(self, data: bytes) -> bytes:
        raise KeyStoreError("jeton PKCS#11 injoignable", "PKCS#11 token unreachable")

    def close(self) -> None:
        return None


def test_healthz_is_503_when_the_database_or_the_hsm_is_down(
    db_url: str, keys: KeyService, tmp_path: Path
) -> None:
    """Before: /healthz said "ok" whatever the database and the HSM did."""
    base = {"var_dir": tmp_path, "jwt_secret": "x" * 40, "auto_migrate": False}
    down_db = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    cases = [
        (Settings(database_url=db_url, **base), keys, None, 200, None),
        (Settings(database_url=db_url, **base), keys, down_db, 503, "base de données"),
        (Settings(database_url=db_url, **base), _DeadToken(), None, 503, "HSM"),
    ]
    for settings, key_service, engine, status, named in cases:
        app = create_app(settings, keys=key_service, engine=engine)
        answer = TestClient(app, raise_server_exceptions=False).get("/healthz")
        assert answer.status_code == status, answer.text
        if named is not None:
            assert named in answer.json()["message_fr"]
        app.state.engine.dispose()
