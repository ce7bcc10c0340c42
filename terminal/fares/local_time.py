"""Time rules of the fare layer: every decision is taken in Europe/Paris local time.

Rules (docs/tariffs.md, "Edge rules"):

- A naive ``datetime`` is read as Europe/Paris wall-clock time (Intercode/EN 1545 dates and times on
  the card are local). At the autumn DST change, an ambiguous wall-clock time keeps its ``fold``.
- Durations (transfer window, anti-passback) are measured on the real time line, in UTC, so that a
  window that spans a DST change is neither stretched nor shortened. Python subtracts two datetimes
  that share a ``tzinfo`` object as wall-clock times, hence :func:`elapsed`.
- Calendar rules (validity dates, school days, month ends) use the local date.
- A date-based validity end is inclusive: a contract that ends on 31 January is valid until
  23:59:59.999999 local time on 31 January, and refused from 00:00 on 1 February.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def to_local(moment: datetime) -> datetime:
    """The same instant in Europe/Paris; a naive datetime is taken as Paris wall-clock time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=PARIS)
    return moment.astimezone(PARIS)


def to_utc(moment: datetime) -> datetime:
    """The same instant in UTC (naive input read as Paris time)."""
    return to_local(moment).astimezone(UTC)


def local_date(moment: datetime) -> date:
    """The calendar date in Paris at that instant."""
    return to_local(moment).date()


def elapsed(earlier: datetime, later: datetime) -> timedelta:
    """Real time from ``earlier`` to ``later`` (negative if ``later`` is before), DST-safe."""
    return to_utc(later) - to_utc(earlier)


def start_of_day(day: date) -> datetime:
    """00:00 local time on ``day`` (aware, Europe/Paris)."""
    return datetime(day.year, day.month, day.day, tzinfo=PARIS)


def last_day_of_month(year: int, month: int) -> date:
    """28, 29, 30 or 31: the leap-year rule comes from :mod:`calendar`."""
    return date(year, month, calendar.monthrange(year, month)[1])


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` months, clamped to the month end (31 Jan + 1 -> 28/29 Feb)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = last_day_of_month(year, month0 + 1).day
    return date(year, month0 + 1, min(day.day, last))


def day_before_anniversary(start: date, months: int) -> date:
    """Last day of a validity of ``months`` months starting on ``start`` (inclusive).

    The anniversary of a day that the target month lacks (29 February, 31 January) is the first
    day of the following month, so 31 Jan + 1 month ends on 28/29 Feb and 29 Feb 2024 + 12 months
    ends on 28 Feb 2025.
    """
    anniversary = add_months(start, months)
    if anniversary.day < start.day:  # clamped to a shorter month
        anniversary = anniversary + timedelta(days=1)
    return anniversary - timedelta(days=1)


def is_within_dates(moment: datetime, first: date, last: date) -> bool:
    """Whether the local date of ``moment`` lies in ``[first, last]`` (both ends inclusive)."""
    return first <= local_date(moment) <= last
