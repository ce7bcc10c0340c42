"""Tariff bodies: the table's structure as the backend checks it, and the answers.

The backend never imports the terminal: :class:`TariffTableIn` restates the structure of
``terminal/fares/tariff.py`` (docs/tariffs.md) with strict types (integers are integers, not
strings or booleans; unknown keys are refused, as the terminal refuses them), and
:func:`backend.tariffs.service.check_table` adds the cross-references. What passes both is what
the terminals' ``parse_tariff`` accepts; ``tests/backend/test_backend_tariffs.py`` checks it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0)]
Mode = Literal["urban", "coach", "ter"]
Profile = Literal["student", "job_seeker", "senior"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FareMediaIn(_Strict):
    """GTFS-Fares v2 fare media: only physical cards (type 2) are sold."""

    fare_media_id: Text
    fare_media_name: Text
    fare_media_type: Annotated[int, Field(ge=2, le=2)] = 2


class RiderCategoryIn(_Strict):
    """GTFS-Fares v2 rider category."""

    rider_category_id: Text
    rider_category_name: Text
    is_default_fare_category: bool = False
    eligibility_url: str | None = None


class NetworkIn(_Strict):
    """A transport network and its mode."""

    network_id: Count
    network_name: Text
    mode: Mode


class AreaIn(_Strict):
    """A tariff zone."""

    area_id: Text
    area_name: Text
    zone: Count


class FareProductIn(_Strict):
    """One product of the catalogue (amount in eurocents)."""

    fare_product_id: Text
    fare_product_name: Text
    amount: Count
    currency: Literal["EUR"] = "EUR"
    fare_media_id: Text
    rider_category_id: Text = "standard"
    kind: Literal["period_pass", "carnet", "pay_as_you_go", "entitlement"]
    validity: Literal["calendar_month", "month", "year", "day", "none"] = "none"
    networks: list[Count] = []
    modes: list[Mode] = []
    zone_count: Annotated[int, Field(ge=1)] | None = None
    trips: Annotated[int, Field(ge=1)] | None = None
    bike_shelter: Literal["none", "option", "included"] = "none"
    card_code: Count | None = None


class LegRuleIn(_Strict):
    """GTFS-Fares v2 leg rule."""

    leg_group_id: Text
    network_id: Count
    from_area_id: str | None = None
    to_area_id: str | None = None
    fare_product_id: str | None = None


class TransferRuleIn(_Strict):
    """GTFS-Fares v2 transfer rule; only free transfers (type 0) exist at the gate."""

    from_leg_group_id: Text
    to_leg_group_id: Text
    transfer_count: Annotated[int, Field(ge=-1)] = -1
    duration_limit: Annotated[int, Field(gt=0)]
    duration_limit_type: int = 1
    fare_transfer_type: Annotated[int, Field(ge=0, le=0)] = 0
    allow_same_line: bool = False


class TariffTableIn(_Strict):
    """A tariff table as published (format: docs/tariffs.md).

    ``version`` may be given or not: the backend replaces it with the next version number.
    """

    version: Annotated[int, Field(ge=1)] | None = None
    valid_from: str
    timezone: Literal["Europe/Paris"] = "Europe/Paris"
    accepted_networks: list[Count] = [250000, 250149]
    anti_passback_seconds: Count = 450
    reduced_fare_percent: dict[Profile, Annotated[int, Field(ge=0, le=100)]] = {}
    school_transport_product_id: Text
    mobility_aid_product_id: Text
    fare_media: Annotated[list[FareMediaIn], Field(min_length=1)]
    rider_categories: Annotated[list[RiderCategoryIn], Field(min_length=1)]
    networks: Annotated[list[NetworkIn], Field(min_length=1)]
    areas: Annotated[list[AreaIn], Field(min_length=1)]
    fare_products: Annotated[list[FareProductIn], Field(min_length=1)]
    leg_rules: list[LegRuleIn] = []
    transfer_rules: list[TransferRuleIn] = []

    @field_validator("valid_from")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("date ISO attendue (AAAA-MM-JJ) / ISO date expected") from exc
        if len(value) != 10:
            raise ValueError("date ISO attendue (AAAA-MM-JJ) / ISO date expected")
        return value


class TariffVersionOut(BaseModel):
    """A published version, without its table."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    valid_from: str
    issued_at: datetime
    published_by: str
    created_at: datetime
