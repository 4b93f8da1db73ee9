"""The crawl job: every tick, crawl the sources that are due under a per-host budget.

due      = effective sources never checked, or whose next_check_at ≤ now (never retired),
           most overdue first
budget   = scheduler.per_host_per_tick crawls per host per tick, minus the crawls of that
           host already in flight (live claims, e.g. an `aggregator fetch` running beside us);
           the extra due sources are deferred to the next tick (`defer_for_politeness`:
           not an error, no error count)
reports  = pipeline.crawl(settings, store, CrawlOptions(due, claim_owner=daemon))
           (scheduler.mode distributed: queue one job per source for the workers instead,
           see aggregator.distributed)

The pipeline stores each source's next check (the adaptive schedule), so there is nothing
to schedule here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aggregator.daemon import JobContext
from aggregator.models import SourceReport
from aggregator.pipeline import CrawlOptions, crawl
from aggregator.schedule import defer_for_politeness
from aggregator.settings import SourceSettings
from aggregator.source_schedule import fetch_url, is_due, schedule_state
from aggregator.sources import effective_sources
from aggregator.store import SourceState, Store

log = logging.getLogger(__name__)

_NEVER = datetime.min


def due_sources(
    sources: Iterable[SourceSettings], states: dict[str, SourceState], now: datetime
) -> list[SourceSettings]:
    """The `sources` due at `now`, the most overdue (or never checked) first."""
    due = [source for source in sources if is_due(states.get(source.name), now)]

    def overdue(source: SourceSettings) -> datetime:
        state = states.get(source.name)
        when = state.next_check_at if state else None
        return when.replace(tzinfo=None) if when else _NEVER

    return sorted(due, key=overdue)


def host_of(source: SourceSettings, states: dict[str, SourceState]) -> str:
    """The host a crawl of `source` would contact first."""
    return (urlsplit(fetch_url(states.get(source.name), source)).hostname or "").lower()


def in_flight_by_host(
    store: Store, sources: Iterable[SourceSettings], states: dict[str, SourceState], now: datetime
) -> Counter[str]:
    """host → sources of that host held by a live claim right now."""
    busy: Counter[str] = Counter()
    for source in sources:
        claim = store.get_claim(source.name)
        if claim is not None and claim.claimed_until > now:
            busy[host_of(source, states)] += 1
    return busy


def split_by_budget(
    due: Sequence[SourceSettings], states: dict[str, SourceState], busy: Counter[str], budget: int
) -> tuple[list[SourceSettings], list[SourceSettings]]:
    """(crawl now, defer): at most `budget` − in-flight sources per host this tick."""
    taken: Counter[str] = Counter(busy)
    now_list: list[SourceSettings] = []
    later: list[SourceSettings] = []
    for source in due:
        host = host_of(source, states)
        if taken[host] >= budget:
            later.append(source)
            continue
        taken[host] += 1
        now_list.append(source)
    return now_list, later


def defer(context: JobContext, names: Iterable[str], states: dict[str, SourceState]) -> None:
    """Push the next check of `names` to the next tick (politeness; no error counted)."""
    now = context.clock()
    until = now + timedelta(seconds=context.daemon.crawl_tick)
    for name in names:
        state = schedule_state(states.get(name) or SourceState(name=name))
        deferred = defer_for_politeness(state, now=now, until=until)
        context.store.set_next_check(name, deferred.next_check_at)


async def run(context: JobContext) -> None:
    """Crawl the due sources within the per-host budget; defer the rest to the next tick."""
    if context.stopping.is_set():
        return
    store = context.store
    sources = effective_sources(context.settings, store)
    states = {state.name: state for state in store.list_source_states()}
    now = context.clock()
    due = due_sources(sources, states, now)
    if not due:
        return
    busy = in_flight_by_host(store, sources, states, now)
    budget = context.settings.scheduler.per_host_per_tick
    chosen, later = split_by_budget(due, states, busy, budget)
    defer(context, (source.name for source in later), states)
    if not chosen:
        return
    names = tuple(source.name for source in chosen)
    if context.settings.scheduler.mode == "distributed":
        await queue_for_workers(context, names)
        return
    options = CrawlOptions(source_names=names, claim_owner=context.owner)
    reports = await crawl(
        context.settings,
        store,
        options=options,
        clock=context.clock,
        webhooks=context.webhooks,
        pool=context.pool,
        tracker=context.tracker,
    )
    log.info(
        "crawled %d due source(s), deferred %d: %s", len(names), len(later), summarise(reports)
    )


async def queue_for_workers(context: JobContext, names: Sequence[str]) -> None:
    """Distributed mode: queue one crawl job per source for `aggregator worker`s. Until its
    crawl stores the adaptive next check, a queued source is not due again."""
    from aggregator.distributed import defer_due

    hours = context.settings.scheduler.max_interval_hours
    until = context.clock() + timedelta(hours=hours)
    queued = await defer_due(context.settings, context.store, names, next_check=until)
    log.info("queued %d of %d due source(s) for the workers", len(queued), len(names))


def summarise(reports: Sequence[SourceReport]) -> str:
    """One line: new, updated, not modified, busy and failed counts."""
    new = sum(report.new for report in reports)
    updated = sum(report.updated for report in reports)
    not_modified = sum(report.not_modified for report in reports)
    busy = sum(report.status == "busy" for report in reports)
    failed = sum(report.failed for report in reports)
    return (
        f"{new} new, {updated} updated, {not_modified} not modified, {busy} busy, {failed} failed"
    )
