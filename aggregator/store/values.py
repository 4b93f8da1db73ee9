"""The values the store returns: frozen, library-free, safe to pass between steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aggregator.models import QualityReason, Record

SOURCE_STATES = ("ok", "erroring", "dead", "retired")
# the newest file in migrations/versions (tests/test_migrations.py holds it to Alembic's
# head): a database stamped with it is opened without importing Alembic at all
HEAD_REVISION = "0006"


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """How a batch landed: one count per incoming record, so they add up to the batch size."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored, with its row id and tracking state.

    `content_hash` is the sha256 of the public fields of the record as last upserted;
    the tracking updaters (`set_quality`, `set_heat`, ...) leave it alone, so a re-crawl
    of an unchanged page stays `unchanged`.
    """

    id: int
    record: Record
    story_id: str | None
    content_hash: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the crawler knows about one feed (mirrors the ``sources`` row).

    The schedule fields (`state`, `next_check_at`, `first_error_at`, `last_interval_seconds`,
    `redirect_url`/`redirect_first_seen`, `url_override`, `entry_dates`) are written from
    `aggregator.schedule` decisions; `url_override` is the confirmed new URL of a feed that
    moved permanently, fetched instead of the configured one.
    """

    name: str
    url: str = ""
    final_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_status: int | None = None
    last_fetch_at: datetime | None = None
    last_error: str | None = None
    error_count: int = 0
    not_modified_count: int = 0
    fetch_count: int = 0
    next_check_at: datetime | None = None
    state: str = "ok"
    body_hash: str | None = None
    first_error_at: datetime | None = None
    last_interval_seconds: float | None = None
    redirect_url: str | None = None
    redirect_first_seen: datetime | None = None
    url_override: str | None = None
    entry_dates: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportedSource:
    """An imported feed, as the store returns it."""

    name: str
    url: str
    category: str = "news"
    type: str = "article"
    pages: bool = True


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """How a batch of imported sources landed."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class QualityUpdate:
    """A new quality score with its reasons and the published flag it implies."""

    score: int
    reasons: tuple[QualityReason, ...]
    is_published: bool


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    """What the tracking layer changes on one record; None fields are left alone."""

    record_id: int
    story_id: str | None = None
    heat: int | None = None
    related: tuple[int, ...] | None = None
    quality: QualityUpdate | None = None
