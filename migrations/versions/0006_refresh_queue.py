"""refresh_queue: records whose heat, related list and quality a crawl has yet to refresh

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the empty queue."""
    op.create_table(
        "refresh_queue",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id"),
    )


def downgrade() -> None:
    """Drop the queue (pending refreshes are lost; the next crawl's links redo them)."""
    op.drop_table("refresh_queue")
