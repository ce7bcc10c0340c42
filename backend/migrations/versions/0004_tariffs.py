"""Tariff tables.

Revision ID: 0004_tariffs
Revises: 0003_desk
Create Date: 2026-11-27

tariff_versions: one row per published tariff table, with the signed payload and its signature.
See docs/backend.md (Tariffs).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_tariffs"
down_revision: str | None = "0003_desk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``tariff_versions``."""
    op.create_table(
        "tariff_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_tariff_versions")),
    )


def downgrade() -> None:
    """Drop ``tariff_versions``."""
    op.drop_table("tariff_versions")
