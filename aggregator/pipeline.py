"""The only place that sequences the steps. The CLI and the scheduled jobs both call it.

For every selected source, concurrently, one source's failure never stopping the others::

    claim(source) or report "busy"                            # a lease in the store (locks.py)
    state   = store.source_state(source)                      # etag, last-modified, body hash
    result  = fetch(url_override or url, conditional)         # fetch.py   (304 → done)
    (unchanged body hash → done, even when the server ignores conditional GET)
    feed    = parse_feed(result.content)                      # feeds.py       [pool]
    entries = entries new or changed since last time          # entry hashes in the store
    pages   = fetch each entry's article page, extract it     # fetch.py, extract.py [pool]
    records = build_record(entry, page, source)               # records.py     [pool]
    records = tracker.enrich(records)                         # topics → quality [pool]
    features = linking features of each record                # stories_prepare [pool]
    store.upsert_records(records)                             # one transaction per source,
                                                              # in the crawl's store thread
    tracker.link(records, features)                           # stories, heat, related
    webhooks.offer(new published records)                     # webhooks.py (background)
    store.save_source_state(state' + schedule.next_check)     # source_schedule.py

Steps marked [pool] are CPU-bound: they run in the crawl's `WorkPool` (worktasks.py), so
the other cores parse while this process keeps the sockets busy and does the store and the
story linking. One pool serves a whole crawl (the daemon keeps one for its lifetime); with
no workers they run here, in the same code.

The next check of a source (success, 304, error, 410, confirmed 301/308) is decided here, by
the adaptive schedule, so `aggregator fetch` and the daemon store the same thing.

Every expected failure is an `AggregatorError`; it is recorded on the source and reported
as a `SourceReport` with `error` set. Anything else is a bug: it is logged with its traceback
and reported the same way, so the batch still finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator import metrics
from aggregator.dates import Clock, utc_now
from aggregator.errors import AggregatorError, ConfigError
from aggregator.fetch import Fetcher
from aggregator.linkbatch import LinkBatcher
from aggregator.locks import Lease, Leases
from aggregator.models import (
    FetchResult,
    PageMetadata,
    ParsedFeed,
    RawEntry,
    Record,
    SourceReport,
)
from aggregator.schedule import SchedulePolicy, observe_result
from aggregator.settings import Settings, SourceSettings
from aggregator.source_schedule import (
    apply_schedule,
    failure_observation,
    fetch_url,
    newest_dates,
    schedule_policy,
)
from aggregator.sources import effective_settings
from aggregator.store import SourceState
from aggregator.store.ledger import sqlite_path
from aggregator.webhooks import WebhookDispatcher, webhook_session
from aggregator.workbatch import TaskBatcher
from aggregator.workpool import WORKER_MODULES, WorkPool, default_workers, start_forkserver

if TYPE_CHECKING:
    from aggregator.store import Store
    from aggregator.tracking import Linker
    from aggregator.worktasks import PageOutcome, TrackingConfig

# The modules that parse, build, extract and link (worktasks, tracking, linker, enrich) are
# imported where a source has changed: a crawl where every feed answers 304 never loads them.

log = logging.getLogger(__name__)

ProgressCallback = Callable[[SourceReport], None]

POOL_MIN_SOURCES = 8
"""With `fetch.parse_workers` unset, a smaller crawl parses in-process (unless the pool is
already running): starting workers would cost more than they save."""
WORKER_NICENESS = 10
"""How much lower the parse workers' CPU priority is than the crawling process's and the
linker's. The linker adds records one after the other, so it is the crawl's critical path;
on equal terms the workers took a third of its core, and on the bench corpus it still had
~2.5 s of records to link after the last feed (~0.5 s since). Workers wait only when the
linker and the crawling process have nothing to do, which the linker's backlog of parsed
records keeps bounded."""
# sources in progress per fetch connection: enough that the linker always has the next
# batches waiting while the sockets stay busy, few enough that memory does not follow the
# number of feeds (4 held ~14 MB of parsed batches waiting for a busy linker at 1,000
# outlets, for no speed: docs/benchmarks.md)
SOURCES_IN_FLIGHT_PER_CONNECTION = 2
_IN_PROCESS = WorkPool(0)


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
    tracker: Linker
    options: CrawlOptions
    clock: Clock
    policy: SchedulePolicy
    pool: WorkPool
    page_slots: asyncio.Semaphore  # pages fetched but not yet extracted, at most
    source_slots: asyncio.Semaphore  # sources between claim and linked, at most
    link_thread: ThreadPoolExecutor  # the one thread that links, so batches wait in its
    # queue rather than each in a thread of the loop's default executor, which the
    # resolver (getaddrinfo) needs for every new connection
    store_thread: ThreadPoolExecutor  # the one thread that stores a source's records and
    # state: an upsert holds ~10 ms of database work, and a write may wait for the lock,
    # both of which the sockets would otherwise wait for
    webhooks: WebhookDispatcher | None = None
    rng: random.Random = field(default_factory=random.Random)
    _tracking: TrackingConfig | None = None
    _page_extractor: TaskBatcher[PageOutcome] | None = None
    _link_batcher: LinkBatcher | None = None

    @property
    def page_extractor(self) -> TaskBatcher[PageOutcome]:
        """Extracts fetched pages in the pool, several to a task (built on first use)."""
        if self._page_extractor is None:
            from aggregator.worktasks import extract_page_task

            self._page_extractor = TaskBatcher(self.pool, extract_page_task)
        return self._page_extractor

    @property
    def link_batcher(self) -> LinkBatcher:
        """Links stored batches in the link thread, writing those that waited together
        (built on first use)."""
        if self._link_batcher is None:
            self._link_batcher = LinkBatcher(self.tracker, self.link_thread)
        return self._link_batcher

    @property
    def tracking(self) -> TrackingConfig:
        """What the workers need to build and score records (built on first use)."""
        if self._tracking is None:
            from aggregator.worktasks import TrackingConfig

            self._tracking = TrackingConfig.of(self.settings)
        return self._tracking


def select_sources(settings: Settings, names: Sequence[str]) -> list[SourceSettings]:
    """The configured sources, or only the named ones; unknown names are a ConfigError."""
    if not names:
        return list(settings.sources)
    known = {source.name: source for source in settings.sources}
    for index, name in enumerate(names):
        if name not in known:
            raise ConfigError(f"--source[{index}]", f"no source named {name!r} in the config")
    return [known[name] for name in names]


def crawl_pool(settings: Settings) -> WorkPool:
    """The work pool `fetch.parse_workers` asks for (unset: `default_workers()`); nothing
    starts until a crawl gives it work. Close it when done (it is a context manager)."""
    workers = settings.fetch.parse_workers
    count = default_workers() if workers is None else workers
    return WorkPool(count, preload=WORKER_MODULES, niceness=WORKER_NICENESS)


async def crawl(
    settings: Settings,
    store: Store,
    *,
    options: CrawlOptions = CrawlOptions(),
    clock: Clock = utc_now,
    on_report: ProgressCallback | None = None,
    webhooks: WebhookDispatcher | None = None,
    pool: WorkPool | None = None,
    tracker: Linker | None = None,
) -> list[SourceReport]:
    """Crawl the selected sources concurrently and return one report per source.

    New published records go to `webhooks` (the daemon's long-lived dispatcher); without
    one, a local dispatcher is used when a topic has webhooks, drained before returning.
    Parsing runs in `pool` (the daemon's long-lived one); without one, in a pool of this
    crawl, closed before returning. Linking uses `tracker` (a daemon's or worker's, which
    keeps its story index between crawls); without one, `crawl_linker` of this crawl.
    """
    settings = effective_settings(settings, store)
    sources = select_sources(settings, options.source_names)
    with (
        contextlib.nullcontext(pool) if pool else crawl_pool(settings) as work_pool,
        contextlib.nullcontext(tracker)
        if tracker
        else crawl_linker(settings, store, len(sources)) as linker,
    ):
        return await _crawl_sources(
            settings,
            store,
            sources,
            options,
            clock,
            on_report,
            webhooks,
            work_pool,
            linker,
            owns_pool=pool is None,
        )


def crawl_linker(
    settings: Settings, store: Store, sources: int
) -> contextlib.AbstractContextManager[Linker]:
    """Where a crawl of `sources` links: in a `LinkerProcess` when the crawl runs worker
    processes (`fetch.parse_workers` above 0; unset: more than one CPU and not a small
    crawl), else in this process. Close it when done (it is a context manager)."""
    if uses_worker_processes(settings, sources):
        from aggregator.linker import LinkerProcess

        return LinkerProcess(settings, store, preload=WORKER_MODULES)
    from aggregator.tracking import Tracker

    return contextlib.nullcontext(Tracker(settings, store))


def uses_worker_processes(settings: Settings, sources: int) -> bool:
    """Whether a crawl of `sources` sources parses and links in worker processes: when
    `fetch.parse_workers` asks for some or, unset, on more than one CPU for a crawl of at
    least `POOL_MIN_SOURCES` sources."""
    workers = settings.fetch.parse_workers
    if workers is None:
        return default_workers() > 0 and sources >= POOL_MIN_SOURCES
    return workers > 0


def start_workers_for_new_store(settings: Settings, source_names: Sequence[str] = ()) -> None:
    """Start the worker processes' forkserver now, in the background, when the crawl about
    to run is the first one of a SQLite store not created yet.

    Every source of that crawl is new, so its feeds will be parsed and linked in worker
    processes whenever the crawl runs any (`uses_worker_processes`). Started here, before
    the store, the forkserver's imports (~0.5 s) run beside the store's creation
    (SQLAlchemy's imports and the schema, 0.3-0.45 s) instead of after it. Any other crawl
    starts its workers as before, at its first changed feed: an unchanged re-poll starts
    no process. Raises ConfigError for an unknown source name, as the crawl would."""
    path = sqlite_path(settings.storage.url)
    if path is None or path.exists():
        return
    if uses_worker_processes(settings, len(select_sources(settings, source_names))):
        start_forkserver(WORKER_MODULES)


async def _crawl_sources(
    settings: Settings,
    store: Store,
    sources: Sequence[SourceSettings],
    options: CrawlOptions,
    clock: Clock,
    on_report: ProgressCallback | None,
    webhooks: WebhookDispatcher | None,
    pool: WorkPool,
    tracker: Linker,
    *,
    owns_pool: bool = False,
) -> list[SourceReport]:
    policy = schedule_policy(settings.scheduler)
    slots = asyncio.Semaphore(4 * settings.fetch.concurrency)
    sources_in_flight = asyncio.Semaphore(
        SOURCES_IN_FLIGHT_PER_CONNECTION * settings.fetch.concurrency
    )
    pool = _pool_worth_using(pool, settings, len(sources))
    reports: list[SourceReport] = []
    async with (
        Fetcher(settings.fetch) as fetcher,
        webhook_session(settings, webhooks) as sink,
    ):
        with (
            ThreadPoolExecutor(1, thread_name_prefix="link") as link_thread,
            ThreadPoolExecutor(1, thread_name_prefix="store") as store_thread,
        ):
            context = _Context(
                settings,
                store,
                fetcher,
                tracker,
                options,
                clock,
                policy,
                pool,
                slots,
                sources_in_flight,
                link_thread,
                store_thread,
                sink,
            )
            async with contextlib.aclosing(_crawl_leased(context, sources)) as crawled:
                async for report in crawled:
                    reports.append(report)
                    if on_report is not None:
                        on_report(report)
            if owns_pool and pool.started:  # the refresh needs no workers: free their memory
                await asyncio.to_thread(pool.close)
            await _refresh_linked(context, clock())
    metrics.set_sources_by_state(store.count_source_states())
    order = {source.name: index for index, source in enumerate(sources)}
    return sorted(reports, key=lambda report: order[report.source])


async def _refresh_linked(context: _Context, now: datetime) -> None:
    """Refresh the heat, related lists and quality that the crawl's links queued.

    A failure loses nothing: the queue is in the store, and the next crawl refreshes it."""
    flush = functools.partial(context.tracker.flush, now=now)
    try:
        await asyncio.get_running_loop().run_in_executor(context.link_thread, flush)
    except AggregatorError as exc:
        log.error("could not refresh linked records (the next crawl retries): %s", exc)


def _pool_worth_using(pool: WorkPool, settings: Settings, sources: int) -> WorkPool:
    """`pool`, unless `parse_workers` is unset, the pool is idle and the crawl is small."""
    if settings.fetch.parse_workers is not None or pool.started or sources >= POOL_MIN_SOURCES:
        return pool
    return _IN_PROCESS


async def _crawl_leased(
    context: _Context, sources: Sequence[SourceSettings]
) -> AsyncGenerator[SourceReport, None]:
    """Claim every source at once (`Leases`), then crawl those held, yielding each report as
    it comes; one claimed by another process is reported busy."""
    leases = Leases(context.store, [s.name for s in sources], context.options.claim_owner)
    try:
        by_name = leases.take()
    except AggregatorError as exc:  # the claim itself failed (database unavailable)
        for source in sources:
            yield SourceReport(source=source.name, status="error", error=str(exc))
        return
    if any(lease.held and lease.state is None for lease in by_name.values()):
        context.pool.start_soon()  # a source never fetched will be parsed and linked
        context.tracker.warm_up()
    crawls = [asyncio.ensure_future(_crawl_claimed(context, s, by_name[s.name])) for s in sources]
    try:
        for next_report in asyncio.as_completed(crawls):
            yield await next_report
    finally:
        await _stop_unfinished(crawls)
        await leases.close()


async def _stop_unfinished(crawls: Sequence[asyncio.Future[SourceReport]]) -> None:
    """Cancel the source crawls still running and wait until they have unwound.

    A crawl stopped early (Ctrl-C, SIGTERM, an error in the caller) must not leave them
    running past it: they would go on using the fetcher, the threads and the linker that
    the crawl closes next, and fail against them."""
    unfinished = [crawl for crawl in crawls if not crawl.done()]
    for crawl in unfinished:
        crawl.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)


async def _crawl_claimed(context: _Context, source: SourceSettings, lease: Lease) -> SourceReport:
    """Crawl `source` if its lease is held, else report it busy.

    At most `source_slots` sources are between their fetch and their linked records: the
    fetches would otherwise outrun the linker and hold every waiting source's parsed batch
    in memory (peak RSS growing with the number of feeds)."""
    if not lease.held:
        return SourceReport(source=source.name, status="busy")
    async with context.source_slots:
        return await _crawl_guarded(context, source, lease)


async def _crawl_guarded(context: _Context, source: SourceSettings, lease: Lease) -> SourceReport:
    try:
        return await crawl_source(context, source, lease)
    except AggregatorError as exc:
        await _record_failure(context, source, lease, exc)
        return SourceReport(source=source.name, status="error", error=str(exc))
    except Exception as exc:  # a bug: keep the batch alive, but say so loudly
        log.exception("bug while crawling %s", source.name)
        await _record_failure(context, source, lease, exc)
        return SourceReport(source=source.name, status="error", error=f"internal error: {exc!r}")


async def crawl_source(context: _Context, source: SourceSettings, lease: Lease) -> SourceReport:
    """Run the whole pipeline for one source, held under `lease` (raises AggregatorError on
    failure). Saving its state is the last step, and ends the lease."""
    state = lease.state or SourceState(name=source.name)
    result = await context.fetcher.fetch(
        fetch_url(state, source), etag=state.etag, last_modified=state.last_modified, kind="feed"
    )
    now = context.clock()
    body_hash = hashlib.sha256(result.content).hexdigest() if not result.not_modified else ""
    if result.not_modified or body_hash == state.body_hash:
        saved_hash = body_hash or state.body_hash or ""
        await _save_success(context, lease, state, source, result, now, saved_hash)
        return SourceReport(source=source.name, status="not modified", not_modified=True)
    from aggregator.worktasks import SourceBatch, SourceWork, build_source_batch, parse_feed_task

    context.tracker.warm_up()  # a changed feed: records will need linking
    feed = await context.pool.run(parse_feed_task, result.content, result.final_url, result.headers)
    entries, new_guids = _changed_entries(context.store, source.name, feed.entries)
    pages, page_errors, pending = await _fetch_pages(context, source, entries)
    work = SourceWork(
        context.tracking, source, result.final_url, tuple(entries), pages, frozenset(pending), now
    )
    batch = await context.pool.run(build_source_batch, work) if entries else SourceBatch((), ())
    records = list(batch.records)
    loop = asyncio.get_running_loop()
    upsert = context.store.upsert_records
    counts = await loop.run_in_executor(context.store_thread, upsert, records)
    metrics.record_records(counts.new, counts.updated)
    await context.link_batcher.link(records, now=now, features=batch.features)
    _offer_new(context, records, new_guids)
    await _save_success(context, lease, state, source, result, now, body_hash, feed)
    return SourceReport(
        source=source.name,
        status="ok",
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged + len(feed.entries) - len(entries),
        pages_fetched=len(pages),
        page_errors=page_errors,
    )


def _changed_entries(
    store: Store, source_name: str, entries: Sequence[RawEntry]
) -> tuple[list[RawEntry], set[str]]:
    """The entries new or changed since last time, and the guids never stored before."""
    from aggregator.worktasks import entry_hash

    unique: dict[str, RawEntry] = {}
    for entry in entries:
        unique.setdefault(entry.guid, entry)
    stored = store.entry_hashes(source_name, list(unique))
    changed = [entry for guid, entry in unique.items() if stored.get(guid) != entry_hash(entry)]
    return changed, {guid for guid in unique if guid not in stored}


def _offer_new(context: _Context, records: Sequence[Record], new_guids: set[str]) -> None:
    """Hand the new records that ended up published (as stored) to the webhooks."""
    if context.webhooks is None or not context.webhooks.targets:
        return
    fresh = [r for r in records if r.provenance.guid in new_guids and r.topics]
    stored = (context.store.get_record(record.web_url) for record in fresh)
    context.webhooks.offer(item.record for item in stored if item and item.record.is_published)


async def _fetch_pages(
    context: _Context, source: SourceSettings, entries: Sequence[RawEntry]
) -> tuple[dict[str, PageMetadata], int, set[str]]:
    """Pages by entry guid, the failure count, and the guids whose page is still to fetch."""
    settings = context.settings.fetch
    if not (context.options.fetch_pages and settings.fetch_pages and source.pages):
        return {}, 0, set()
    linked = [entry for entry in entries if entry.link]
    wanted, deferred = (
        linked[: settings.max_pages_per_source],
        linked[settings.max_pages_per_source :],
    )
    now = context.clock()
    outcomes = await asyncio.gather(*(_page(context, entry.link, now) for entry in wanted))
    pages = {e.guid: o.page for e, o in zip(wanted, outcomes, strict=True) if o.page}
    pending = {e.guid for e, o in zip(wanted, outcomes, strict=True) if o.retry}
    pending.update(entry.guid for entry in deferred)
    return pages, len(wanted) - len(pages), pending


async def _page(context: _Context, url: str, now: datetime) -> PageOutcome:
    """Fetch one page and extract it in the pool; bodies waiting for extraction are bounded
    by `page_slots` (the pool may extract more slowly than loopback serves)."""
    from aggregator.enrich import fetch_page_body, log_skipped
    from aggregator.worktasks import PageOutcome

    async with context.page_slots:
        body = await fetch_page_body(context.fetcher, url)
        if not isinstance(body, PageOutcome):
            body = await context.page_extractor.run(body, now)
    return log_skipped(body)


async def _save_success(
    context: _Context,
    lease: Lease,
    state: SourceState,
    source: SourceSettings,
    result: FetchResult,
    now: datetime,
    body_hash: str,
    feed: ParsedFeed | None = None,
) -> None:
    """Store a successful fetch and its next check (a 304 or unchanged body reuses the
    stored entry dates, so a feed gone quiet is polled less and less)."""
    dates = newest_dates([e.published or e.updated for e in feed.entries]) if feed else ()
    dates = dates or state.entry_dates
    observation = observe_result(
        result, at=now, hints=feed.hints if feed else None, entry_dates=dates
    )
    updated = replace(
        state,
        url=source.url,
        final_url=result.final_url,
        etag=result.etag or state.etag,
        last_modified=result.last_modified or state.last_modified,
        last_status=result.status,
        last_fetch_at=now,
        last_error=None,
        fetch_count=state.fetch_count + 1,
        not_modified_count=state.not_modified_count + int(result.not_modified),
        body_hash=body_hash,
        entry_dates=dates,
    )
    scheduled = apply_schedule(updated, observation, context.policy, now=now, rng=context.rng)
    # a changed feed's records were just stored on the store thread: its state follows
    await _save_and_release(context, lease, scheduled, on_store_thread=feed is not None)


async def _save_and_release(
    context: _Context, lease: Lease, state: SourceState, *, on_store_thread: bool = True
) -> None:
    """Save `state` and end the lease.

    On the store thread by default: the write may wait for the database's write lock,
    held while the linker or the store thread writes, and the event loop, which every
    socket and every source's next step waits for, must not wait with it (a cold 200-feed
    fetch: 0.99 s in all). An unchanged feed's state is saved on the loop: in a re-poll
    nothing else writes, and a hop to the thread for each of 200 feeds made it ~0.1 s
    slower (0.70-0.79 s against 0.78-0.92 s)."""
    save = functools.partial(context.store.save_source_state, state, release_owner=lease.owner)
    if on_store_thread:
        await asyncio.get_running_loop().run_in_executor(context.store_thread, save)
    else:
        save()
    lease.released = True


async def _record_failure(
    context: _Context, source: SourceSettings, lease: Lease, exc: BaseException
) -> None:
    """Store a failed crawl and its next check (backoff, Retry-After, dead, 410 retired)."""
    try:
        state = lease.state or SourceState(name=source.name)
        now = context.clock()
        observation = failure_observation(exc, now, fetch_url(state, source))
        updated = replace(
            state,
            url=source.url,
            last_status=observation.status,
            last_fetch_at=now,
            last_error=str(exc)[:1000],
            fetch_count=state.fetch_count + 1,
        )
        policy = context.policy
        scheduled = apply_schedule(updated, observation, policy, now=now, rng=context.rng)
        await _save_and_release(context, lease, scheduled)
    except AggregatorError:
        log.exception("could not record the failure of %s", source.name)
