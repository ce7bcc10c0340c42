"""FastAPI dependencies shared by every domain: settings, database session, key service.

Everything hangs off ``app.state`` (set by :func:`backend.app.create_app`), never off module
globals, so two apps with two databases can live in one process (the tests do).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from backend.settings import Settings

if TYPE_CHECKING:
    from backend.keys.service import KeyService


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return cast(Settings, request.app.state.settings)


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the endpoint returns, rolled back on any error.

    Used with ``scope="function"`` so the commit happens before the answer is sent: a client never
    sees a success for a transaction that then failed to commit.
    """
    factory = cast(sessionmaker[Session], request.app.state.sessionmaker)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_keys(request: Request) -> KeyService:
    """The app's key service (PKCS#11 token)."""
    return cast("KeyService", request.app.state.keys)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
KeysDep = Annotated["KeyService", Depends(get_keys)]
