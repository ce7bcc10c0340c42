"""Every ORM model of the backend, imported in one place so ``Base.metadata`` is complete.

Alembic's ``env.py`` and the tests use :func:`load_all_models`; the upload / validation domains are
imported when present.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from backend.db import Base

PLATFORM_MODELS = (
    "backend.auth.models",
    "backend.terminals.models",
    "backend.holders.models",
    "backend.cards.models",
    "backend.products.models",
    "backend.entitlements.models",
    "backend.denylists.models",
    "backend.actions.models",
    "backend.tariffs.models",
    "backend.privacy.models",
    "backend.audit.models",
    "backend.desk.models",
    "backend.holderpage.models",
    "backend.idempotency.models",
)
OPTIONAL_MODELS = (
    "backend.uploads.models",
    "backend.validation.models",
    "backend.ledger.models",
    "backend.reconciliation.models",
    "backend.partners.models",
)


def load_all_models() -> MetaData:
    """Import every model module and return the shared metadata."""
    for name in PLATFORM_MODELS + OPTIONAL_MODELS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if name in OPTIONAL_MODELS and (name == missing or name.startswith(missing + ".")):
                continue
            raise
    return Base.metadata
