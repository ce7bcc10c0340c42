"""Desk jobs.

Revision ID: 0003_desk
Revises: 0002_validation
Create Date: 2025-06-09

desk_jobs: one card to write at one desk (issue, update, replace), its plan, the steps done and
the French message the desk page shows. See docs/desk.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_desk"
down_revision: str | None = "0002_validation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``desk_jobs``."""
    op.create_table(
        "desk_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk_terminal_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("card_serial", sa.String(length=32), nullable=True),
        sa.Column("replaces_serial", sa.String(length=32), nullable=True),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("steps_done", sa.Text(), nullable=False),
        sa.Column("current_step", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_desk_jobs_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_jobs")),
    )
    op.create_index(
        op.f("ix_desk_jobs_desk_terminal_id"), "desk_jobs", ["desk_terminal_id"], unique=False
    )
    op.create_index(op.f("ix_desk_jobs_holder_id"), "desk_jobs", ["holder_id"], unique=False)
    op.create_index(op.f("ix_desk_jobs_status"), "desk_jobs", ["status"], unique=False)


def downgrade() -> None:
    """Drop ``desk_jobs``."""
    op.drop_index(op.f("ix_desk_jobs_status"), table_name="desk_jobs")
    op.drop_index(op.f("ix_desk_jobs_holder_id"), table_name="desk_jobs")
    op.drop_index(op.f("ix_desk_jobs_desk_terminal_id"), table_name="desk_jobs")
    op.drop_table("desk_jobs")
