"""``/api/v1/products``: the catalogue; loads sold at the desk or by a terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.actions.schemas import CardActionOut
from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend.auth.dependencies import (
    AgentPrincipal,
    TerminalPrincipal,
    require_agent,
    require_terminal,
)
from backend.auth.roles import TERMINAL_SELLS, WRITING_ROLES, AgentRole
from backend.dependencies import SessionDep
from backend.errors import Forbidden
from backend.idempotency import service as idempotency
from backend.pagination import PageDep
from backend.products import service
from backend.products.schemas import (
    LoadIn,
    PriceChangeOut,
    PriceIn,
    ProductIn,
    ProductOut,
    SaleOut,
)

router = APIRouter(prefix="/api/v1/products", tags=["products"])


def _sale_out(load: service.Load) -> SaleOut:
    assert load.sale is not None  # the API's loads record their sale at once
    return SaleOut(
        id=load.sale.id,
        card_serial=load.card_serial,
        product_code=load.product.code,
        amount_cents=load.sale.amount_cents,
        channel=load.sale.channel,
        sold_by=load.sale.sold_by,
        sold_at=load.sale.sold_at,
        action=CardActionOut.model_validate(load.action),
    )


@router.get("", response_model=list[ProductOut])
def catalogue(
    session: SessionDep, _: Annotated[AgentPrincipal, Depends(require_agent())], page: PageDep
) -> list[ProductOut]:
    """The active catalogue."""
    return page.of([ProductOut.model_validate(p) for p in service.list_products(session)])


@router.post("", response_model=ProductOut, status_code=status.HTTP_201_CREATED)
def create_product(
    body: ProductIn,
    session: SessionDep,
    agent: Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))],
) -> ProductOut:
    """Add a product to the catalogue (supervisors only); the price history starts here."""
    product = service.create_product(session, **body.model_dump())
    _history(session, agent, "product.create", product.code, f"créé à {body.amount_cents} c")
    return ProductOut.model_validate(product)


# A catalogue code in the path: the card's 16-bit ContractTariff, as ProductIn.code (a larger
# number overflowed PostgreSQL's integer before any lookup: a 500 found by the fuzzer).
ProductCode = Annotated[
    int, Path(ge=0, le=0xFFFF, description="code du produit / Intercode ContractTariff code")
]
Supervisor = Annotated[AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR))]
Overseer = Annotated[
    AgentPrincipal, Depends(require_agent(AgentRole.SUPERVISOR, AgentRole.AUDITOR))
]


def _history(session: SessionDep, agent: AgentPrincipal, action: str, code: int, what: str) -> None:
    audit.record_lookup(session, agent, action=action, subject=f"product:{code}", reason=what)


@router.get("/all", response_model=list[ProductOut])
def whole_catalogue(session: SessionDep, _: Overseer, page: PageDep) -> list[ProductOut]:
    """Every product, on sale or not (supervisors, auditors)."""
    return page.of(
        [ProductOut.model_validate(p) for p in service.list_products(session, active_only=False)]
    )


@router.post("/{code}/deactivate", response_model=ProductOut)
def deactivate_product(code: ProductCode, session: SessionDep, agent: Supervisor) -> ProductOut:
    """Take a product off sale (supervisors only; loads already sold stay valid)."""
    product = service.deactivate_product(session, code)
    _history(session, agent, "product.deactivate", code, "retiré de la vente")
    return ProductOut.model_validate(product)


@router.post("/{code}/price", response_model=ProductOut)
def change_price(
    code: ProductCode, body: PriceIn, session: SessionDep, agent: Supervisor
) -> ProductOut:
    """Change a product's price from now on (supervisors only)."""
    product, before = service.change_price(session, code, body.amount_cents)
    _history(session, agent, "product.price", code, f"prix {before} c -> {body.amount_cents} c")
    return ProductOut.model_validate(product)


@router.get("/{code}/history", response_model=list[PriceChangeOut])
def price_history(
    code: ProductCode, session: SessionDep, _: Overseer, page: PageDep
) -> list[PriceChangeOut]:
    """Creation, price changes and withdrawal of a product, oldest first."""
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.subject == f"product:{code}", AuditEntry.action.like("product.%"))
        .order_by(AuditEntry.id)
    )
    return page.of(
        [PriceChangeOut(at=r.at, by=r.agent, action=r.action, detail=r.reason) for r in rows]
    )


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="clé unique de la vente : une requête renvoyée avec la même clé rend la "
        "même réponse sans vendre deux fois / one key per sale: a resent request is answered "
        "again, never sold twice",
    ),
]


def _sell_once(
    session: Session,
    *,
    caller: str,
    key: str | None,
    endpoint: str,
    body: LoadIn,
    sell: Callable[[], SaleOut],
) -> SaleOut | JSONResponse:
    def run() -> tuple[int, dict[str, Any]]:
        return status.HTTP_201_CREATED, sell().model_dump(mode="json")

    code, answer, replayed = idempotency.run_once(
        session,
        caller=caller,
        key=idempotency.check_key(key),
        endpoint=endpoint,
        request=body.model_dump(mode="json"),
        run=run,
    )
    if replayed:
        return JSONResponse(answer, status_code=code, headers={"Idempotent-Replayed": "true"})
    return SaleOut.model_validate(answer)


@router.post("/loads", response_model=SaleOut, status_code=status.HTTP_201_CREATED)
def desk_load(
    body: LoadIn,
    session: SessionDep,
    agent: Annotated[AgentPrincipal, Depends(require_agent(*WRITING_ROLES))],
    idempotency_key: IdempotencyKeyHeader = None,
) -> SaleOut | JSONResponse:
    """Sell a product for a card at the desk; written on the card at its next tap.

    With ``Idempotency-Key``, a resent request gets the first answer again (same status and
    body, header ``Idempotent-Replayed: true``) and nothing is sold twice.
    """

    def sell() -> SaleOut:
        load = service.load_product(
            session,
            card_serial=body.card_serial,
            product_code=body.product_code,
            channel="desk",
            sold_by=agent.username,
            amount_cents=body.amount_cents,
        )
        return _sale_out(load)

    return _sell_once(
        session,
        caller=f"agent:{agent.username}",
        key=idempotency_key,
        endpoint="POST /products/loads",
        body=body,
        sell=sell,
    )


@router.post("/terminal-loads", response_model=SaleOut, status_code=status.HTTP_201_CREATED)
def terminal_load(
    body: LoadIn,
    session: SessionDep,
    terminal: Annotated[TerminalPrincipal, Depends(require_terminal())],
    idempotency_key: IdempotencyKeyHeader = None,
) -> SaleOut | JSONResponse:
    """A terminal sells a product (a canteen till tops up the wallet; never a transit contract).

    ``Idempotency-Key`` as for ``/products/loads``.
    """
    product = service.get_product(session, body.product_code)
    if product.application not in TERMINAL_SELLS[terminal.kind]:
        raise Forbidden(
            f"un terminal {terminal.kind.value} ne vend pas de produit {product.application.value}",
            f"a {terminal.kind.value} terminal may not sell {product.application.value} products",
        )

    def sell() -> SaleOut:
        load = service.load_product(
            session,
            card_serial=body.card_serial,
            product_code=body.product_code,
            channel="terminal",
            sold_by=terminal.terminal_id,
            amount_cents=body.amount_cents,
        )
        return _sale_out(load)

    return _sell_once(
        session,
        caller=f"terminal:{terminal.terminal_id}",
        key=idempotency_key,
        endpoint="POST /products/terminal-loads",
        body=body,
        sell=sell,
    )
