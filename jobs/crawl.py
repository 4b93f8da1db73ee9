"""The crawl job: every tick, crawl the sources that are due, then schedule their next check.

due     = sources never checked, or whose next_check_at ≤ now (not retired)
reports = pipeline.crawl(settings, store, CrawlOptions(due, claim_owner=daemon))
          (the same unit of work as `aggregator fetch`; busy sources are skipped)
for each crawled source: next_check_at = now + default_interval
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from aggregator.daemon import JobContext
from aggregator.models import SourceReport
from aggregator.pipeline import CrawlOptions, crawl
from aggregator.settings import SourceSettings
from aggregator.store import SourceState

log = logging.getLogger(__name__)


def is_due(state: SourceState | None, now: datetime) -> bool:
    """True when a source was never checked or its next check time has come."""
    if state is None:
        return True
    if state.state == "retired":
        return False
    return state.next_check_at is None or state.next_check_at <= now


def due_sources(
    sources: Iterable[SourceSettings], states: dict[str, SourceState | None], now: datetime
) -> list[str]:
    """The names of the `sources` that are due at `now`, in config order."""
    return [source.name for source in sources if is_due(states.get(source.name), now)]


async def run(context: JobContext) -> None:
    """Crawl every due source once and schedule each one's next check."""
    if context.stopping.is_set():
        return
    store = context.store
    sources = context.settings.sources
    states = {source.name: store.get_source_state(source.name) for source in sources}
    due = due_sources(sources, states, context.clock())
    if not due:
        return
    options = CrawlOptions(source_names=tuple(due), claim_owner=context.owner)
    reports = await crawl(context.settings, store, options=options, clock=context.clock)
    schedule_next(context, reports)
    log.info("crawled %d due source(s): %s", len(due), summarise(reports))


def schedule_next(context: JobContext, reports: Sequence[SourceReport]) -> None:
    """Give every crawled source a next check `default_interval` from now, unless the crawl
    already scheduled it later; busy sources are left to their holder."""
    store = context.store
    now = context.clock()
    at = now + timedelta(seconds=context.daemon.default_interval)
    for report in reports:
        if report.status == "busy":
            continue
        state = store.get_source_state(report.source)
        if state is None or state.next_check_at is None or state.next_check_at <= now:
            store.set_next_check(report.source, at)


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
