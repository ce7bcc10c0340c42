"""The catalogue of fare products and the record of each sale."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.auth.roles import Application
from backend.columns import UTCDateTime, str_enum, utcnow
from backend.db import Base


class Product(Base):
    """A fare product, shaped like GTFS-Fares v2 ``fare_products.txt``.

    Attributes:
        code: Intercode ContractTariff / catalogue code written on the card.
        fare_product_id: GTFS ``fare_product_id``.
        application: card application the product lives in (plum contracts, wallet reloads...).
        rider_category_id: GTFS ``rider_category_id`` (eligibility), if restricted.
        fare_media_id: GTFS ``fare_media_id``; the regional card is fare media type 2.
        amount_cents: price in eurocents (may be zero, e.g. free school transport).
        duration_days: validity of a season ticket from its load; ``None`` for trip packs, SV.
        trips: number of trips loaded (a counter contract), if any.
    """

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[int] = mapped_column(unique=True)
    fare_product_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    application: Mapped[Application] = mapped_column(str_enum(Application))
    rider_category_id: Mapped[str | None] = mapped_column(String(64))
    fare_media_id: Mapped[str] = mapped_column(String(64), default="carte_regionale")
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    duration_days: Mapped[int | None]
    trips: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True)


class Sale(Base):
    """A product sold for a card: not a ledger entry (the ledger posts when the card confirms).

    ``sold_by`` is an agent user name or a terminal id, per ``channel``.
    """

    __tablename__ = "sales"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    amount_cents: Mapped[int]
    channel: Mapped[str] = mapped_column(String(16))
    sold_by: Mapped[str] = mapped_column(String(64))
    sold_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("card_actions.id"))
