"""Partner readers and shop tills: what each is registered for.

Revision ID: 0008_partners_shops
Revises: 0007_idempotency
Create Date: 2026-12-06

partner_terminals: the employment partner (``PARTNERS`` name) and site of a ``partner`` reader.
shop_terminals: the shop's name and the Cursus aid purposes (books, sport, leisure) a ``shop``
till may take. Both hang off ``terminals`` (the kind column is a plain VARCHAR: the new kinds
``partner`` and ``shop`` need no change there). See docs/partner.md and docs/shop.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_partners_shops"
down_revision: str | None = "0007_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partner_terminals",
        sa.Column("terminal_id", sa.String(length=64), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("site", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name=op.f("fk_partner_terminals_terminal_id_terminals"),
        ),
        sa.PrimaryKeyConstraint("terminal_id", name=op.f("pk_partner_terminals")),
    )
    op.create_table(
        "shop_terminals",
        sa.Column("terminal_id", sa.String(length=64), nullable=False),
        sa.Column("shop_name", sa.String(length=200), nullable=False),
        sa.Column("purposes", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.terminal_id"],
            name=op.f("fk_shop_terminals_terminal_id_terminals"),
        ),
        sa.PrimaryKeyConstraint("terminal_id", name=op.f("pk_shop_terminals")),
    )


def downgrade() -> None:
    op.drop_table("shop_terminals")
    op.drop_table("partner_terminals")
