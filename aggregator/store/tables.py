"""Database rows (SQLModel tables). They never leave `aggregator.store`.

    sources        one row per configured feed: conditional-GET state and health
    records        one row per story; identity (source_name, guid), web_url, amp_web_url
    images         records.id → ordered lead images
    record_topics  records.id → ordered topic names
    related        records.id → ordered related entries: a link to another record
                   (computed) or a JSON snapshot of an entry we only imported
    source_claims  source name → lease (owner, claimed_until) held while it is crawled

Datetimes are stored in UTC and come back aware (SQLModel's ``UTCDateTime``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import false
from sqlmodel import JSON, CheckConstraint, Field, SQLModel, UniqueConstraint


class SourceRow(SQLModel, table=True):
    """A feed and what the crawler knows about it."""

    __tablename__ = "sources"
    __table_args__ = (
        CheckConstraint("state IN ('ok', 'erroring', 'dead', 'retired')", name="ck_source_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    url: str
    final_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_status: int | None = None
    last_fetch_at: datetime | None = None
    last_error: str | None = None
    error_count: int = 0
    not_modified_count: int = 0
    fetch_count: int = 0
    next_check_at: datetime | None = Field(default=None, index=True)
    state: str = "ok"
    body_hash: str | None = None
    first_error_at: datetime | None = None
    last_interval_seconds: float | None = None
    redirect_url: str | None = None
    redirect_first_seen: datetime | None = None
    url_override: str | None = None
    entry_dates: list[str] = Field(default_factory=list, sa_type=JSON)  # ISO 8601, UTC


class RecordRow(SQLModel, table=True):
    """A story: the public fields, its provenance, and tracking state."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("source_name", "guid", name="uq_records_source_guid"),
        CheckConstraint("quality BETWEEN 0 AND 100", name="ck_records_quality"),
        CheckConstraint("heat >= -1", name="ck_records_heat"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_name: str = Field(default="", index=True)
    guid: str | None = None
    web_url: str = Field(unique=True)
    amp_web_url: str = Field(default="", index=True)
    cdn_amp_web_url: str = ""
    category: str = "news"
    title: str
    excerpt: str = ""
    published_at: datetime | None = Field(default=None, index=True)
    type: str = "article"
    quality: int = 0
    heat: int = -1
    is_published: bool = Field(default=False, index=True)
    provider_name: str
    provider_domain: str = Field(index=True)
    title_key: str = Field(default="", index=True)
    # server defaults as revision 0003 added them (a new SQLite file is made from this)
    page_pending: bool = Field(
        default=False, index=True, sa_column_kwargs={"server_default": false()}
    )
    page_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    text_hash: str = Field(default="", index=True)
    secured: str = ""
    feed_url: str = ""
    entry_hash: str = ""
    categories: list[str] = Field(  # the feed entry's categories, for topic rules (retag)
        default_factory=list, sa_type=JSON, sa_column_kwargs={"server_default": "[]"}
    )
    fetched_at: datetime | None = None
    text: str = ""
    quality_reasons: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    story_id: str | None = Field(default=None, index=True)
    link_seq: int | None = Field(default=None, index=True)  # link_counter.seq of last story write
    content_hash: str
    created_at: datetime
    updated_at: datetime = Field(index=True)


class ImageRow(SQLModel, table=True):
    """One lead image of a record, in order."""

    __tablename__ = "images"

    record_id: int = Field(foreign_key="records.id", ondelete="CASCADE", primary_key=True)
    position: int = Field(primary_key=True)
    url: str
    width: int | None = None
    height: int | None = None
    title: str | None = None


class TopicRow(SQLModel, table=True):
    """One topic of a record, best first."""

    __tablename__ = "record_topics"

    record_id: int = Field(foreign_key="records.id", ondelete="CASCADE", primary_key=True)
    position: int = Field(primary_key=True)
    topic: str = Field(index=True)


class RelatedRow(SQLModel, table=True):
    """One related entry: a link to a stored record, or a snapshot of an imported one."""

    __tablename__ = "related"
    __table_args__ = (
        CheckConstraint(
            "related_record_id IS NOT NULL OR snapshot IS NOT NULL", name="ck_related_target"
        ),
    )

    record_id: int = Field(foreign_key="records.id", ondelete="CASCADE", primary_key=True)
    position: int = Field(primary_key=True)
    related_record_id: int | None = Field(
        default=None, foreign_key="records.id", ondelete="CASCADE", index=True
    )
    snapshot: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))


class SourceClaimRow(SQLModel, table=True):
    """A lease on a source: `owner` may fetch it until `claimed_until` (UTC)."""

    __tablename__ = "source_claims"

    source_name: str = Field(primary_key=True)
    owner: str
    claimed_at: datetime
    claimed_until: datetime = Field(index=True)


class LinkCounterRow(SQLModel, table=True):
    """One row: the sequence number of the last story-linking batch written to the store.

    A process that keeps a story index in memory compares it with the sequence it last saw,
    and re-reads only the records written since (`records.link_seq`)."""

    __tablename__ = "link_counter"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0


class RefreshQueueRow(SQLModel, table=True):
    """A record linked into a story whose heat, related list and corroborated quality still
    wait to be recomputed: a crawl refreshes each touched record once, at the end, instead of
    once per source batch. A row outlives a killed process, so the next one finishes it."""

    __tablename__ = "refresh_queue"

    record_id: int = Field(foreign_key="records.id", ondelete="CASCADE", primary_key=True)
    linked_at: datetime
