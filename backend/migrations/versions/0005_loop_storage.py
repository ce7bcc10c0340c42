"""Storage for a faster validation loop: batch bytes apart, one card index on taps.

Revision ID: 0005_loop_storage
Revises: 0004_tariffs
Create Date: 2026-11-27

upload_bodies (one row per upload_batches row): ``body``, the wire bytes, moved out of
upload_batches so that marking a batch processed (``processed_at``) updates a small row instead
of rewriting the batch's hundreds of kilobytes; ``prepared``, per record the signing digest,
the SAM signature check and the card pseudonym computed by the upload worker
(``backend/validation/prepare.py``), NULL when the validation loop is to prepare the batch
itself. No foreign key: SQLite rebuilds upload_batches to drop its column (batch mode), which
a reference to it would forbid; the upload service writes both rows in one transaction.

taps: ``uq_taps_card_session`` (partial unique on charged taps) and ``ix_taps_card_pseudonym``
become ONE unique index on ``(card_pseudonym, card_tx_counter, CASE WHEN charged THEN 0 ELSE id
END)``: charged taps of a card session share the key and conflict; the others each carry their
own id and never do; every query by card (and by card and counter) reads its leading columns.
One B-tree less to update per tap.

loop_state: one row, the generation of the loop's state, bumped by each committed chunk; the
loop keeps the card states it wrote in memory while the generation is the one it left.
See docs/validation-loop.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_loop_storage"
down_revision: str | None = "0004_tariffs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CARD_SESSION_KEY = "(CASE WHEN charged THEN 0 ELSE id END)"


def upgrade() -> None:
    """Move the bodies to ``upload_bodies``; merge the two card indexes of ``taps``."""
    op.create_table(
        "upload_bodies",
        sa.Column("batch_row", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("prepared", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("batch_row", name=op.f("pk_upload_bodies")),
    )
    op.execute("INSERT INTO upload_bodies (batch_row, body) SELECT id, body FROM upload_batches")
    with op.batch_alter_table("upload_batches") as batch:
        batch.drop_column("body")
    op.drop_index("ix_taps_card_pseudonym", table_name="taps")
    op.drop_index("uq_taps_card_session", table_name="taps")
    op.create_index(
        "uq_taps_card_session",
        "taps",
        ["card_pseudonym", "card_tx_counter", sa.text(CARD_SESSION_KEY)],
        unique=True,
    )
    loop_state = op.create_table(
        "loop_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loop_state")),
    )
    op.bulk_insert(loop_state, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    """Restore the two card indexes; put the bodies back into ``upload_batches``."""
    op.drop_index("uq_taps_card_session", table_name="taps")
    op.create_index(
        "uq_taps_card_session",
        "taps",
        ["card_pseudonym", "card_tx_counter"],
        unique=True,
        sqlite_where=sa.text("charged = 1"),
        postgresql_where=sa.text("charged"),
    )
    op.create_index("ix_taps_card_pseudonym", "taps", ["card_pseudonym"])
    op.drop_table("loop_state")
    with op.batch_alter_table("upload_batches") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE upload_batches SET body = "
        "(SELECT body FROM upload_bodies WHERE upload_bodies.batch_row = upload_batches.id)"
    )
    with op.batch_alter_table("upload_batches") as batch:
        batch.alter_column("body", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("upload_bodies")
