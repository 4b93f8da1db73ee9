"""The only place that sequences the steps. The CLI and the scheduled jobs both call it.

For every selected source, concurrently, one source's failure never stopping the others::

    claim(source) or report "busy"                            # a lease in the store (locks.py)
    state   = store.source_state(source)                      # etag, last-modified, body hash
    result  = fetch(feed_url, conditional on state)           # fetch.py   (304 → done)
    feed    = parse_feed(result.content)                      # feeds.py
    entries = entries new or changed since last time          # entry hashes in the store
    pages   = fetch + extract each entry's article page       # fetch.py, extract.py
    records = build_record(entry, page, source)               # records.py (normalize, merge)
    records = tracker.enrich(records)                         # topics → quality
    store.upsert_records(records)                             # one transaction per source
    tracker.link(records)                                     # stories, heat, related
    store.save_source_state(state')

Every expected failure is an `AggregatorError`; it is recorded on the source and reported
as a `SourceReport` with `error` set. Anything else is a bug: it is logged with its traceback
and reported the same way, so the batch still finishes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from aggregator import metrics
from aggregator.errors import AggregatorError, ConfigError, FetchError
from aggregator.extract import extract_page
from aggregator.feeds import parse_feed
from aggregator.fetch import Fetcher
from aggregator.locks import source_claim
from aggregator.models import FetchResult, PageMetadata, RawEntry, Record, SourceReport
from aggregator.records import build_record
from aggregator.settings import Settings, SourceSettings
from aggregator.sources import count_states, effective_settings
from aggregator.store import SourceState, Store
from aggregator.tracking import Tracker

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ProgressCallback = Callable[[SourceReport], None]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class CrawlOptions:
    """What one crawl covers."""

    source_names: tuple[str, ...] = ()
    fetch_pages: bool = True
    claim_owner: str | None = None  # who leases the sources (None: this process)


@dataclass(slots=True)
class _Context:
    settings: Settings
    store: Store
    fetcher: Fetcher
    tracker: Tracker
    options: CrawlOptions
    clock: Clock


def select_sources(settings: Settings, names: Sequence[str]) -> list[SourceSettings]:
    """The configured sources, or only the named ones; unknown names are a ConfigError."""
    if not names:
        return list(settings.sources)
    known = {source.name: source for source in settings.sources}
    for index, name in enumerate(names):
        if name not in known:
            raise ConfigError(f"--source[{index}]", f"no source named {name!r} in the config")
    return [known[name] for name in names]


async def crawl(
    settings: Settings,
    store: Store,
    *,
    options: CrawlOptions = CrawlOptions(),
    clock: Clock = utc_now,
    on_report: ProgressCallback | None = None,
) -> list[SourceReport]:
    """Crawl the selected sources concurrently and return one report per source."""
    settings = effective_settings(settings, store)
    sources = select_sources(settings, options.source_names)
    tracker = Tracker(settings, store)
    reports: list[SourceReport] = []
    async with Fetcher(settings.fetch) as fetcher:
        context = _Context(settings, store, fetcher, tracker, options, clock)
        for next_report in asyncio.as_completed([_crawl_claimed(context, s) for s in sources]):
            report = await next_report
            reports.append(report)
            if on_report is not None:
                on_report(report)
    metrics.set_sources_by_state(count_states(store.list_source_states()))
    order = {source.name: index for index, source in enumerate(sources)}
    return sorted(reports, key=lambda report: order[report.source])


async def _crawl_claimed(context: _Context, source: SourceSettings) -> SourceReport:
    """Crawl `source` under a claim; one claimed by another process is reported busy."""
    try:
        async with source_claim(context.store, source.name, context.options.claim_owner) as ok:
            if not ok:
                return SourceReport(source=source.name, status="busy")
            return await _crawl_guarded(context, source)
    except AggregatorError as exc:  # the claim itself failed (database unavailable)
        return SourceReport(source=source.name, status="error", error=str(exc))


async def _crawl_guarded(context: _Context, source: SourceSettings) -> SourceReport:
    try:
        return await crawl_source(context, source)
    except AggregatorError as exc:
        _record_failure(context, source, exc)
        return SourceReport(source=source.name, status="error", error=str(exc))
    except Exception as exc:  # a bug: keep the batch alive, but say so loudly
        log.exception("bug while crawling %s", source.name)
        _record_failure(context, source, exc)
        return SourceReport(source=source.name, status="error", error=f"internal error: {exc!r}")


async def crawl_source(context: _Context, source: SourceSettings) -> SourceReport:
    """Run the whole pipeline for one source (raises AggregatorError on failure)."""
    state = context.store.get_source_state(source.name) or SourceState(name=source.name)
    result = await context.fetcher.fetch(
        source.url, etag=state.etag, last_modified=state.last_modified, kind="feed"
    )
    now = context.clock()
    body_hash = hashlib.sha256(result.content).hexdigest() if not result.not_modified else ""
    if result.not_modified or body_hash == state.body_hash:
        _save_success(context, state, source, result, now, body_hash or state.body_hash or "")
        return SourceReport(source=source.name, status="not modified", not_modified=True)
    feed = parse_feed(result.content, url=result.final_url, headers=result.headers)
    entries = _changed_entries(context.store, source.name, feed.entries)
    pages, page_errors = await _fetch_pages(context, source, entries)
    records = _build_records(context, source, result.final_url, entries, pages, now)
    counts = context.store.upsert_records(records)
    metrics.record_records(counts.new, counts.updated)
    context.tracker.after_upsert(records, now=now)
    _save_success(context, state, source, result, now, body_hash)
    return SourceReport(
        source=source.name,
        status="ok",
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged + len(feed.entries) - len(entries),
        pages_fetched=len(pages),
        page_errors=page_errors,
    )


def entry_hash(entry: RawEntry) -> str:
    """A fingerprint of what the feed says about an entry, to notice edits at the source."""
    published = entry.published.isoformat() if entry.published else ""
    updated = entry.updated.isoformat() if entry.updated else ""
    parts = (entry.guid, entry.link, entry.title, entry.summary, published, updated)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _changed_entries(store: Store, source_name: str, entries: Sequence[RawEntry]) -> list[RawEntry]:
    unique: dict[str, RawEntry] = {}
    for entry in entries:
        unique.setdefault(entry.guid, entry)
    stored = store.entry_hashes(source_name, list(unique))
    return [entry for guid, entry in unique.items() if stored.get(guid) != entry_hash(entry)]


async def _fetch_pages(
    context: _Context, source: SourceSettings, entries: Sequence[RawEntry]
) -> tuple[dict[str, PageMetadata], int]:
    settings = context.settings.fetch
    if not (context.options.fetch_pages and settings.fetch_pages and source.pages):
        return {}, 0
    wanted = [entry for entry in entries if entry.link][: settings.max_pages_per_source]
    outcomes = await asyncio.gather(*(_fetch_page(context, entry.link) for entry in wanted))
    pages = {entry.guid: page for entry, page in zip(wanted, outcomes, strict=True) if page}
    return pages, len(wanted) - len(pages)


async def _fetch_page(context: _Context, url: str) -> PageMetadata | None:
    try:
        result: FetchResult = await context.fetcher.fetch(url, kind="page")
        return extract_page(
            result.content, result.final_url, headers=result.headers, now=context.clock()
        )
    except AggregatorError as exc:
        log.info("page skipped: %s", exc)
        return None


def _build_records(
    context: _Context,
    source: SourceSettings,
    feed_url: str,
    entries: Sequence[RawEntry],
    pages: dict[str, PageMetadata],
    now: datetime,
) -> list[Record]:
    records: list[Record] = []
    for entry in entries:
        record = build_record(
            entry, pages.get(entry.guid), source, feed_url=feed_url, fetched_at=now, now=now
        )
        if record is not None:
            provenance = replace(record.provenance, entry_hash=entry_hash(entry))
            records.append(replace(record, provenance=provenance))
    return context.tracker.enrich(records, now=now, categories=_categories(entries))


def _categories(entries: Sequence[RawEntry]) -> dict[str, tuple[str, ...]]:
    return {entry.guid: entry.categories for entry in entries}


def _save_success(
    context: _Context,
    state: SourceState,
    source: SourceSettings,
    result: FetchResult,
    now: datetime,
    body_hash: str,
) -> None:
    context.store.save_source_state(
        replace(
            state,
            url=source.url,
            final_url=result.final_url,
            etag=result.etag or state.etag,
            last_modified=result.last_modified or state.last_modified,
            last_status=result.status,
            last_fetch_at=now,
            last_error=None,
            error_count=0,
            fetch_count=state.fetch_count + 1,
            not_modified_count=state.not_modified_count + int(result.not_modified),
            state="ok",
            body_hash=body_hash,
        )
    )


def _record_failure(context: _Context, source: SourceSettings, exc: BaseException) -> None:
    try:
        state = context.store.get_source_state(source.name) or SourceState(name=source.name)
        status = exc.status if isinstance(exc, FetchError) else None
        context.store.save_source_state(
            replace(
                state,
                url=source.url,
                last_status=status,
                last_fetch_at=context.clock(),
                last_error=str(exc)[:1000],
                error_count=state.error_count + 1,
                fetch_count=state.fetch_count + 1,
                state="erroring",
            )
        )
    except AggregatorError:
        log.exception("could not record the failure of %s", source.name)
