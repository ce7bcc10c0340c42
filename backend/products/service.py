"""Catalogue and loads (no FastAPI here).

Loading a product onto a card records a :class:`Sale` (not a ledger entry: money is posted when
the card confirms the write) and queues a :class:`~backend.actions.models.CardAction` written at
the card's next tap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.actions import service as actions
from backend.actions.models import ActionKind, CardAction
from backend.auth.roles import Application
from backend.cards import service as cards
from backend.cards.models import CardStatus
from backend.columns import utcnow
from backend.errors import Conflict, InvalidRequest, NotFound
from backend.products.models import Product, Sale


def create_product(session: Session, **fields: object) -> Product:
    """Add a catalogue entry.

    Raises:
        Conflict: the code or the GTFS id is taken.
    """
    code, fare_id = fields["code"], fields["fare_product_id"]
    if session.scalar(
        select(Product).where((Product.code == code) | (Product.fare_product_id == fare_id))
    ):
        raise Conflict(f"produit {code} déjà au catalogue", f"product {code}/{fare_id} exists")
    product = Product(**fields, active=True)
    session.add(product)
    session.flush()
    return product


def list_products(session: Session, *, active_only: bool = True) -> list[Product]:
    """The catalogue, by code."""
    query = select(Product).order_by(Product.code)
    if active_only:
        query = query.where(Product.active.is_(True))
    return list(session.scalars(query))


def _any_product(session: Session, code: int) -> Product:
    product = session.scalar(select(Product).where(Product.code == code))
    if product is None:
        raise NotFound(f"produit {code} inconnu", f"unknown product {code}")
    return product


def deactivate_product(session: Session, code: int) -> Product:
    """Take a product off sale (loads already sold stay valid).

    Raises:
        NotFound: no such product.
    """
    product = _any_product(session, code)
    product.active = False
    session.flush()
    return product


def change_price(session: Session, code: int, amount_cents: int) -> tuple[Product, int]:
    """Set a product's price (from now on; loads already sold keep theirs).

    Returns:
        The product and its previous price.

    Raises:
        NotFound: no such product.
        InvalidRequest: a price below zero.
    """
    if amount_cents < 0:
        raise InvalidRequest(
            "le prix ne peut pas être négatif", "a price is never below zero", field="amount_cents"
        )
    product = _any_product(session, code)
    before = product.amount_cents
    product.amount_cents = amount_cents
    session.flush()
    return product, before


def get_product(session: Session, code: int) -> Product:
    """The active product with this code.

    Raises:
        NotFound: no such active product.
    """
    product = session.scalar(select(Product).where(Product.code == code, Product.active.is_(True)))
    if product is None:
        raise NotFound(f"produit {code} inconnu", f"unknown product {code}")
    return product


@dataclass(frozen=True)
class Load:
    """A sale and the action that writes it (``sale`` is ``None`` while a desk job has not
    written it yet: see :func:`record_sale`)."""

    sale: Sale | None
    action: CardAction
    card_serial: str
    product: Product


def load_product(
    session: Session,
    *,
    card_serial: str,
    product_code: int,
    channel: str,
    sold_by: str,
    amount_cents: int | None = None,
    record_sale: bool = True,
) -> Load:
    """Sell a product for a card: a sale record and a pending write.

    With ``record_sale=False`` (a desk job) only the write is queued, on an active card or one
    being issued; the desk records the sale once the load is on the card (:func:`record_sale`),
    so a job that stops midway has collected nothing.

    Raises:
        NotFound: unknown card or product.
        Conflict: the card is not active or does not carry the product's application.
        InvalidRequest: a wallet reload without an amount.
    """
    card = cards.get_card(session, card_serial)
    product = get_product(session, product_code)
    allowed = {CardStatus.ACTIVE} if record_sale else {CardStatus.ACTIVE, CardStatus.ISSUING}
    if card.status not in allowed:
        raise Conflict(f"carte {card.serial} {card.status.value}", f"card is {card.status.value}")
    if product.application not in cards.applications_of(card):
        raise Conflict(
            f"la carte ne porte pas l'application {product.application.value}",
            f"card does not carry application {product.application.value}",
        )
    if product.application == Application.WALLET:
        if amount_cents is None:
            raise InvalidRequest(
                "montant du rechargement obligatoire", "a wallet reload needs amount_cents"
            )
        amount, kind = amount_cents, ActionKind.SV_RELOAD
        params: dict[str, object] = {"product_code": product.code, "amount": amount}
    else:
        amount, kind = product.amount_cents, ActionKind.LOAD_CONTRACT
        params = {
            "product_code": product.code,
            "fare_product_id": product.fare_product_id,
            "duration_days": product.duration_days,
            "trips": product.trips,
        }
    action = actions.create_action(
        session,
        card_serial=card.serial,
        application=product.application,
        kind=kind,
        params=params,
        created_by=sold_by,
    )
    sale = None
    if record_sale:
        sale = Sale(
            card_id=card.id,
            product_id=product.id,
            amount_cents=amount,
            channel=channel,
            sold_by=sold_by,
            sold_at=utcnow(),
            action_id=action.id,
        )
        session.add(sale)
        session.flush()
    return Load(sale=sale, action=action, card_serial=card.serial, product=product)


def record_sale(session: Session, action: CardAction, *, channel: str, sold_by: str) -> Sale | None:
    """Record the sale of a load queued with ``record_sale=False``, now on the card (once).

    Returns ``None`` for an action that is not a sale (aid, moved balance) or already recorded.
    """
    if action.kind not in (ActionKind.SV_RELOAD, ActionKind.LOAD_CONTRACT):
        return None
    if session.scalar(select(Sale).where(Sale.action_id == action.id)) is not None:
        return None
    params = json.loads(action.params)
    if "product_code" not in params or "from_card" in params:
        return None  # a load moved from a replaced card: paid when first sold
    product = session.scalar(select(Product).where(Product.code == int(params["product_code"])))
    card = cards.get_card(session, action.card_serial)
    if product is None:
        return None
    amount = int(params["amount"]) if action.kind == ActionKind.SV_RELOAD else product.amount_cents
    sale = Sale(
        card_id=card.id,
        product_id=product.id,
        amount_cents=amount,
        channel=channel,
        sold_by=sold_by,
        sold_at=utcnow(),
        action_id=action.id,
    )
    session.add(sale)
    session.flush()
    return sale
