"""Upload, validation loop, ledger and clearing tables.

Revision ID: 0002_validation
Revises: 0001_platform
Create Date: 2025-06-02

upload_batches (raw signed batches), taps (pseudonymised card sessions), anomalies,
deny_candidates, purse_states, terminal_states, gaps, operator_stations, product_values,
ledger_entries, clearing_periods, settlements. See docs/validation-loop.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_validation"
down_revision: str | None = "0001_platform"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tables of uploads, validation, ledger and reconciliation."""
    op.create_table(
        "anomalies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("terminal_id", sa.String(length=64), nullable=True),
        sa.Column("terminal_seq", sa.BigInteger(), nullable=True),
        sa.Column("card_pseudonym", sa.String(length=64), nullable=True),
        sa.Column("card_tx_counter", sa.BigInteger(), nullable=True),
        sa.Column("batch_id", sa.String(length=160), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
    )
    op.create_index(
        op.f("ix_anomalies_card_pseudonym"), "anomalies", ["card_pseudonym"], unique=False
    )
    op.create_index(op.f("ix_anomalies_kind"), "anomalies", ["kind"], unique=False)
    op.create_index(op.f("ix_anomalies_terminal_id"), "anomalies", ["terminal_id"], unique=False)
    op.create_table(
        "clearing_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_id", sa.String(length=32), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pass_pool", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_periods")),
        sa.UniqueConstraint("period_id", name=op.f("uq_clearing_periods_period_id")),
    )
    op.create_table(
        "deny_candidates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_serial", sa.String(length=32), nullable=False),
        sa.Column("card_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deny_candidates")),
        sa.UniqueConstraint("card_serial", name=op.f("uq_deny_candidates_card_serial")),
    )
    op.create_table(
        "gaps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=12), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gaps")),
        sa.UniqueConstraint(
            "scope", "subject", "number", name=op.f("uq_gaps_scope_subject_number")
        ),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_ref", sa.String(length=120), nullable=False),
        sa.Column("line", sa.SmallInteger(), nullable=False),
        sa.Column("account", sa.String(length=120), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reverses", sa.String(length=120), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(op.f("ix_ledger_entries_account"), "ledger_entries", ["account"], unique=False)
    op.create_index(
        op.f("ix_ledger_entries_entry_ref"), "ledger_entries", ["entry_ref"], unique=False
    )
    op.create_table(
        "operator_stations",
        sa.Column("station_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("network_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_operator_stations")),
    )
    op.create_table(
        "product_values",
        sa.Column("product_code", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("trip_value", sa.Integer(), nullable=False),
        sa.Column("pass_product", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("product_code", name=op.f("pk_product_values")),
    )
    op.create_table(
        "purse_states",
        sa.Column("card_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("last_counter", sa.BigInteger(), nullable=False),
        sa.Column("purses", sa.Text(), nullable=False),
        sa.Column("open_gaps", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("card_pseudonym", name=op.f("pk_purse_states")),
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period_id", sa.String(length=32), nullable=False),
        sa.Column("payer", sa.String(length=120), nullable=False),
        sa.Column("payee", sa.String(length=120), nullable=False),
        sa.Column("account", sa.String(length=120), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
    )
    op.create_index(op.f("ix_settlements_period_id"), "settlements", ["period_id"], unique=False)
    op.create_table(
        "taps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("terminal_id", sa.String(length=64), nullable=True),
        sa.Column("terminal_seq", sa.BigInteger(), nullable=True),
        sa.Column("batch_row", sa.BigInteger(), nullable=True),
        sa.Column("card_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("card_tx_counter", sa.BigInteger(), nullable=False),
        sa.Column("charged", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("application", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("resolution", sa.String(length=24), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("product_code", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("school_uai", sa.String(length=16), nullable=True),
        sa.Column("operator_id", sa.String(length=32), nullable=True),
        sa.Column("movements", sa.Text(), nullable=False),
        sa.Column("sam_verified", sa.Boolean(), nullable=False),
        sa.Column("sam_serial", sa.String(length=8), nullable=True),
        sa.Column("sam_counter", sa.Integer(), nullable=True),
        sa.Column("written_event", sa.Text(), nullable=True),
        sa.Column("record_digest", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taps")),
        sa.UniqueConstraint(
            "terminal_id", "terminal_seq", name=op.f("uq_taps_terminal_id_terminal_seq")
        ),
    )
    op.create_index("ix_taps_card_pseudonym", "taps", ["card_pseudonym"], unique=False)
    op.create_index(
        "uq_taps_card_session",
        "taps",
        ["card_pseudonym", "card_tx_counter"],
        unique=True,
        sqlite_where=sa.text("charged = 1"),
        postgresql_where=sa.text("charged"),
    )
    op.create_table(
        "terminal_states",
        sa.Column("terminal_id", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("open_gaps", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", name=op.f("pk_terminal_states")),
    )
    op.create_table(
        "upload_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch_id", sa.String(length=160), nullable=False),
        sa.Column("terminal_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_batches")),
        sa.UniqueConstraint("batch_id", name=op.f("uq_upload_batches_batch_id")),
    )
    op.create_index(
        "ix_upload_batches_pending", "upload_batches", ["processed_at", "id"], unique=False
    )
    op.create_index(
        op.f("ix_upload_batches_terminal_id"), "upload_batches", ["terminal_id"], unique=False
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_upload_batches_pending", table_name="upload_batches")
    op.drop_index(op.f("ix_upload_batches_terminal_id"), table_name="upload_batches")
    op.drop_table("upload_batches")
    op.drop_table("terminal_states")
    op.drop_index("ix_taps_card_pseudonym", table_name="taps")
    op.drop_index("uq_taps_card_session", table_name="taps")
    op.drop_table("taps")
    op.drop_index(op.f("ix_settlements_period_id"), table_name="settlements")
    op.drop_table("settlements")
    op.drop_table("purse_states")
    op.drop_table("product_values")
    op.drop_table("operator_stations")
    op.drop_index(op.f("ix_ledger_entries_account"), table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_entry_ref"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("gaps")
    op.drop_table("deny_candidates")
    op.drop_table("clearing_periods")
    op.drop_index(op.f("ix_anomalies_card_pseudonym"), table_name="anomalies")
    op.drop_index(op.f("ix_anomalies_kind"), table_name="anomalies")
    op.drop_index(op.f("ix_anomalies_terminal_id"), table_name="anomalies")
    op.drop_table("anomalies")
