"""Paging of list endpoints: ``?limit=`` (1-1000, default 100) and ``?offset=`` (default 0).

The answer stays a JSON list (no envelope: existing clients keep working); the header
``X-Total-Count`` gives the number of items before paging, so a client knows when to ask for the
next page. Usage in a router::

    def list_things(session: SessionDep, page: PageDep) -> list[ThingOut]:
        return page.of([ThingOut.model_validate(t) for t in service.things(session)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Response

from backend.bounds import MAX_DB_ID

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
TOTAL_HEADER = "X-Total-Count"


@dataclass(frozen=True)
class Page:
    """One page of a list: ``limit`` items from ``offset``."""

    limit: int
    offset: int
    response: Response

    def of(self, items: Sequence[T]) -> list[T]:
        """This page of ``items``; sets ``X-Total-Count`` to ``len(items)``."""
        self.response.headers[TOTAL_HEADER] = str(len(items))
        return list(items[self.offset : self.offset + self.limit])


def _page(
    response: Response,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="éléments par page / items per page")
    ] = DEFAULT_LIMIT,
    offset: Annotated[
        int, Query(ge=0, le=MAX_DB_ID, description="éléments à sauter / items to skip")
    ] = 0,
) -> Page:
    return Page(limit, offset, response)


PageDep = Annotated[Page, Depends(_page)]
