"""The holder's page: accounts, activation codes, login failures, guardians, online payments,
trips kept at the holder's request; the time of a card's last known balances.

Revision ID: 0006_holder_page
Revises: 0005_loop_storage
Create Date: 2026-12-06

See docs/holder.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_holder_page"
down_revision: str | None = "0005_loop_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the holder-page tables and ``cards.balances_at``."""
    op.add_column("cards", sa.Column("balances_at", TZ, nullable=True))
    op.create_table(
        "holder_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("oidc_issuer", sa.String(length=300), nullable=True),
        sa.Column("oidc_sub", sa.String(length=300), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("keep_trip_history", sa.Boolean(), nullable=False),
        sa.Column("history_since", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_holder_accounts_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_accounts")),
        sa.UniqueConstraint("holder_id", name=op.f("uq_holder_accounts_holder_id")),
        sa.UniqueConstraint("login", name=op.f("uq_holder_accounts_login")),
        sa.UniqueConstraint(
            "oidc_issuer", "oidc_sub", name=op.f("uq_holder_accounts_oidc_issuer_oidc_sub")
        ),
    )
    op.create_table(
        "holder_activation_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("issued_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["holders.id"],
            name=op.f("fk_holder_activation_codes_holder_id_holders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_activation_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_holder_activation_codes_code_hash")),
    )
    op.create_index(
        op.f("ix_holder_activation_codes_holder_id"), "holder_activation_codes", ["holder_id"]
    )
    op.create_table(
        "holder_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=200), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_login_failures")),
    )
    for column in ("login", "client", "at"):
        op.create_index(
            op.f(f"ix_holder_login_failures_{column}"), "holder_login_failures", [column]
        )
    op.create_table(
        "holder_guardians",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guardian_holder_id", sa.Integer(), nullable=False),
        sa.Column("ward_holder_id", sa.Integer(), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["guardian_holder_id"],
            ["holders.id"],
            name=op.f("fk_holder_guardians_guardian_holder_id_holders"),
        ),
        sa.ForeignKeyConstraint(
            ["ward_holder_id"],
            ["holders.id"],
            name=op.f("fk_holder_guardians_ward_holder_id_holders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_guardians")),
        sa.UniqueConstraint(
            "guardian_holder_id",
            "ward_holder_id",
            name=op.f("uq_holder_guardians_guardian_holder_id_ward_holder_id"),
        ),
    )
    for column in ("guardian_holder_id", "ward_holder_id"):
        op.create_index(op.f(f"ix_holder_guardians_{column}"), "holder_guardians", [column])
    op.create_table(
        "holder_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("paid_by_holder_id", sa.Integer(), nullable=False),
        sa.Column("card_serial", sa.String(length=32), nullable=False),
        sa.Column("product_code", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_holder_payments_holder_id_holders")
        ),
        sa.ForeignKeyConstraint(
            ["paid_by_holder_id"],
            ["holders.id"],
            name=op.f("fk_holder_payments_paid_by_holder_id_holders"),
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["sales.id"], name=op.f("fk_holder_payments_sale_id_sales")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_payments")),
    )
    op.create_index(op.f("ix_holder_payments_holder_id"), "holder_payments", ["holder_id"])
    op.create_table(
        "holder_kept_trips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("tap_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("application", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("school_uai", sa.String(length=16), nullable=True),
        sa.Column("product_code", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_holder_kept_trips_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_kept_trips")),
        sa.UniqueConstraint("tap_id", name=op.f("uq_holder_kept_trips_tap_id")),
    )
    op.create_index(op.f("ix_holder_kept_trips_holder_id"), "holder_kept_trips", ["holder_id"])


def downgrade() -> None:
    """Drop them again."""
    for table in (
        "holder_kept_trips",
        "holder_payments",
        "holder_guardians",
        "holder_login_failures",
        "holder_activation_codes",
        "holder_accounts",
    ):
        op.drop_table(table)
    # A plain ALTER TABLE (SQLite >= 3.35 has DROP COLUMN): a batch copy of ``cards`` would
    # trip the foreign keys of the tables that reference it.
    op.drop_column("cards", "balances_at")
