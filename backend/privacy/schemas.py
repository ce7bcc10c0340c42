"""Privacy bodies."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class PurgeOut(BaseModel):
    """Outcome of a purge."""

    card_links_deleted: int
    batch_bodies_deleted: int
    pseudonym_keys_destroyed: int


class OpenDataCellOut(BaseModel):
    """One published cell."""

    station_id: int
    hour: datetime
    taps: int
    cards: int


class OpenDataOut(BaseModel):
    """A day's k-anonymous open data."""

    day: date
    k: int
    cells: list[OpenDataCellOut]
    suppressed_cells: int
