"""Article pages that could not be fetched with their feed entry, fetched later.

    pending = store.pending_pages(limit)            records flagged page_pending
    page    = fetch + extract each record's page    (fetch.py, extract.py)
    record  = build_record(entry from the record, page, source)
    store.upsert_records(records)                   same identity: updated in place
    tracker.after_upsert(records)                   stories, heat, related

A failure that may pass (timeout, 5xx, 429, connection) keeps the record pending for the
next run, up to MAX_ATTEMPTS; one that will not (robots.txt, 4xx, refused address, not
HTML) ends the wait. `pipeline.crawl` uses the same `fetch_page_body` to flag pending pages
(and extracts in its work pool; here `fetch_page` extracts in-process: few pages, no pool).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from aggregator.errors import (
    AggregatorError,
    BlockedAddressError,
    ExtractError,
    FetchError,
    RobotsDisallowedError,
)
from aggregator.fetch import Fetcher
from aggregator.models import PageMetadata, RawEntry, Record
from aggregator.records import build_record
from aggregator.settings import Settings, SourceSettings
from aggregator.store import Store, StoredRecord
from aggregator.tracking import Linker, Tracker
from aggregator.worktasks import PageBody, PageOutcome, extract_page_task

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class EnrichReport:
    """What one enrichment run did."""

    attempted: int
    enriched: int
    still_pending: int


def worth_retrying(exc: AggregatorError) -> bool:
    """Whether a failed page fetch may succeed later."""
    if isinstance(exc, RobotsDisallowedError | BlockedAddressError | ExtractError):
        return False
    if isinstance(exc, FetchError) and exc.status is not None:
        return exc.status >= 500 or exc.status in (408, 425, 429)
    return isinstance(exc, FetchError)


async def fetch_page_body(fetcher: Fetcher, url: str) -> PageBody | PageOutcome:
    """Fetch one article page for extraction; a failure becomes an outcome, never raises."""
    try:
        result = await fetcher.fetch(url, kind="page", encoded=True)
    except AggregatorError as exc:
        return PageOutcome(None, retry=worth_retrying(exc), skipped=str(exc))
    headers = dict(result.headers)
    return PageBody(
        result.final_url, result.content, headers, result.content_encoding, fetcher.max_body_bytes
    )


def log_skipped(outcome: PageOutcome) -> PageOutcome:
    """Log why a page was skipped (extraction may have run in a worker process)."""
    if outcome.skipped:
        log.info("page skipped: %s", outcome.skipped)
    return outcome


async def fetch_page(fetcher: Fetcher, url: str, now: datetime) -> PageOutcome:
    """Fetch and extract one article page; errors become an outcome, never an exception."""
    body = await fetch_page_body(fetcher, url)
    return log_skipped(body if isinstance(body, PageOutcome) else extract_page_task(body, now))


async def enrich_pending(
    settings: Settings,
    store: Store,
    *,
    limit: int,
    clock: Callable[[], datetime],
    tracker: Linker | None = None,
) -> EnrichReport:
    """Fetch up to `limit` pending pages and update their records in place (linked by
    `tracker`, the daemon's, when given)."""
    pending = store.pending_pages(limit, max_attempts=MAX_ATTEMPTS)
    if not pending:
        return EnrichReport(0, 0, 0)
    now = clock()
    async with Fetcher(settings.fetch) as fetcher:
        outcomes = await asyncio.gather(
            *(fetch_page(fetcher, item.record.web_url, now) for item in pending)
        )
    enriched: list[Record] = []
    still = 0
    for item, outcome in zip(pending, outcomes, strict=True):
        record = _rebuilt(settings, item, outcome.page, now) if outcome.page else None
        keep_waiting = record is None and outcome.retry
        store.set_page_state(item.id, pending=keep_waiting, attempted=True)
        still += keep_waiting
        if record is not None:
            enriched.append(record)
    enriched = Tracker(settings, None).enrich(enriched, now=now)
    store.upsert_records(enriched)
    (tracker or Tracker(settings, store)).after_upsert(enriched, now=now)
    return EnrichReport(len(pending), len(enriched), still)


def _rebuilt(
    settings: Settings, item: StoredRecord, page: PageMetadata, now: datetime
) -> Record | None:
    """The stored record (standing in for its feed entry) merged with its page."""
    stored = item.record
    provenance = stored.provenance
    source = settings.source(provenance.source_name) or SourceSettings(
        name=provenance.source_name or "unknown",
        url=provenance.feed_url or stored.web_url,
        category=stored.category,
        type=stored.type,
    )
    entry = RawEntry(
        guid=provenance.guid or stored.web_url,
        link=stored.web_url,
        title=stored.title,
        summary=stored.excerpt,
        published=stored.published,
        categories=provenance.categories,
        images=stored.images,
    )
    record = build_record(
        entry, page, source, feed_url=provenance.feed_url, fetched_at=now, now=now
    )
    if record is None:
        return None
    done = replace(provenance, page_pending=False, fetched_at=now)
    return replace(record, provenance=done)
