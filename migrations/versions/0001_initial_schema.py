"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 14:24:15.498355
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "imported_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pages", sa.Boolean(), nullable=False),
        sa.Column("imported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("imported_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imported_sources_name"), ["name"], unique=True)

    op.create_table(
        "records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("guid", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("web_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("amp_web_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cdn_amp_web_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("excerpt", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("published_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("heat", sa.Integer(), nullable=False),
        sa.Column("is_published", sa.Boolean(), nullable=False),
        sa.Column("provider_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("provider_domain", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("title_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("text_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("secured", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("feed_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("entry_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fetched_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("quality_reasons", sa.JSON(), nullable=False),
        sa.Column("story_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.CheckConstraint("heat >= -1", name="ck_records_heat"),
        sa.CheckConstraint("quality BETWEEN 0 AND 100", name="ck_records_quality"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_name", "guid", name="uq_records_source_guid"),
        sa.UniqueConstraint("web_url"),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_records_amp_web_url"), ["amp_web_url"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_is_published"), ["is_published"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_records_provider_domain"), ["provider_domain"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_records_published_at"), ["published_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_source_name"), ["source_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_story_id"), ["story_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_text_hash"), ["text_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_title_key"), ["title_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "source_claims",
        sa.Column("source_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_name"),
    )
    with op.batch_alter_table("source_claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_claims_claimed_until"), ["claimed_until"], unique=False
        )

    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("final_url", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_modified", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_fetch_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("not_modified_count", sa.Integer(), nullable=False),
        sa.Column("fetch_count", sa.Integer(), nullable=False),
        sa.Column("next_check_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("body_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("first_error_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_interval_seconds", sa.Float(), nullable=True),
        sa.Column("redirect_url", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("redirect_first_seen", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("url_override", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("entry_dates", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "state IN ('ok', 'erroring', 'dead', 'retired')", name="ck_source_state"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sources_name"), ["name"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_sources_next_check_at"), ["next_check_at"], unique=False
        )

    op.create_table(
        "images",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id", "position"),
    )
    op.create_table(
        "record_topics",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id", "position"),
    )
    with op.batch_alter_table("record_topics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_topics_topic"), ["topic"], unique=False)

    op.create_table(
        "related",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("related_record_id", sa.Integer(), nullable=True),
        sa.Column("snapshot", sa.JSON(none_as_null=True), nullable=True),
        sa.CheckConstraint(
            "related_record_id IS NOT NULL OR snapshot IS NOT NULL", name="ck_related_target"
        ),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["related_record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id", "position"),
    )
    with op.batch_alter_table("related", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_related_related_record_id"), ["related_record_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("related", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_related_related_record_id"))

    op.drop_table("related")
    with op.batch_alter_table("record_topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_topics_topic"))

    op.drop_table("record_topics")
    op.drop_table("images")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sources_next_check_at"))
        batch_op.drop_index(batch_op.f("ix_sources_name"))

    op.drop_table("sources")
    with op.batch_alter_table("source_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_claims_claimed_until"))

    op.drop_table("source_claims")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_updated_at"))
        batch_op.drop_index(batch_op.f("ix_records_title_key"))
        batch_op.drop_index(batch_op.f("ix_records_text_hash"))
        batch_op.drop_index(batch_op.f("ix_records_story_id"))
        batch_op.drop_index(batch_op.f("ix_records_source_name"))
        batch_op.drop_index(batch_op.f("ix_records_published_at"))
        batch_op.drop_index(batch_op.f("ix_records_provider_domain"))
        batch_op.drop_index(batch_op.f("ix_records_is_published"))
        batch_op.drop_index(batch_op.f("ix_records_amp_web_url"))

    op.drop_table("records")
    with op.batch_alter_table("imported_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imported_sources_name"))

    op.drop_table("imported_sources")
