"""Column types shared by the domains: aware UTC timestamps, portable enums, canonical JSON text.

SQLite has no time zone type: a plain ``DateTime`` gives naive values back. :class:`UTCDateTime`
stores UTC (naive on SQLite, ``timestamptz`` on PostgreSQL) and always returns aware UTC values,
so comparisons (48-hour link retention, deny-list ages) never mix naive and aware times.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Enum
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp column that takes and gives aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def canonical_json(doc: Any) -> str:
    """Canonical JSON text for a text column: keys sorted, no spaces, non-ASCII kept as is."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def str_enum(enum: type, length: int = 24) -> Enum:
    """A portable enum column: stored as VARCHAR with the enum's values (no native PG type)."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [member.value for member in e],
    )
