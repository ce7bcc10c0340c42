"""Bounded request types shared by every router and request body.

Why: an id of 2**63 or more overflowed SQLite's 64-bit integer (a 500 ``OverflowError``), one
of 2**31 or more PostgreSQL's ``integer`` (a 500 ``NumericValueOutOfRange``); a JSON
``true`` was accepted as the amount 1 or the id 1 (pydantic's lax mode); a clearing period
``start: 0`` or an open-data ``day=0`` was read as 1 January 1970. Each is now a 422 at the
boundary, on both databases, before any query runs.

- :data:`PathId` / :data:`QueryId`: a database id in the path or the query string
  (1 .. 2**31-1, the range of an ``Integer`` column on both databases).
- :data:`BodyId`: the same inside a JSON body, where a boolean is refused.
- :data:`BodyInt`: any integer of a JSON body (amounts, codes, counters): booleans refused.
- :data:`IsoDate` / :data:`IsoDateTime`: ISO 8601 text only (no Unix timestamps).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AwareDatetime, BeforeValidator, Field, StrictInt

# Every id the API takes is an ``Integer`` column: 64 bits on SQLite, but 32 bits (``integer``)
# on PostgreSQL, where 2**31 already failed (found by the fuzzer): one bound for both databases.
MAX_DB_ID = 2**31 - 1

PathId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
QueryId = Annotated[int, Query(ge=1, le=MAX_DB_ID)]
BodyInt = StrictInt
BodyId = Annotated[StrictInt, Field(ge=1, le=MAX_DB_ID)]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("date attendue au format AAAA-MM-JJ / expected an ISO date YYYY-MM-DD")


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        return value
    raise ValueError(
        "date et heure attendues au format ISO 8601 avec fuseau / "
        "expected an ISO 8601 date-time with a time zone"
    )


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]
