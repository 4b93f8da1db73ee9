"""records.link_seq and link_counter: which story writes a long-lived story index has seen

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the indexed column (existing rows: never seen, NULL) and the one-row counter."""
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_seq", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_records_link_seq"), ["link_seq"])
    counter = op.create_table(
        "link_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(counter, [{"id": 1, "seq": 0}])


def downgrade() -> None:
    """Drop the counter, the column and its index."""
    op.drop_table("link_counter")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_link_seq"))
        batch_op.drop_column("link_seq")
