"""The page-enrichment job: fetch the article pages still waiting (see aggregator.enrich).

In distributed mode it only queues a batch for the workers (`distributed.defer_page_batch`),
and only when some page is waiting.
"""

from __future__ import annotations

import logging

from aggregator.daemon import JobContext
from aggregator.enrich import MAX_ATTEMPTS, enrich_pending

log = logging.getLogger(__name__)

BATCH = 50


async def run(context: JobContext) -> None:
    """Enrich up to BATCH records whose page could not be fetched with their entry."""
    if context.stopping.is_set():
        return
    if context.settings.scheduler.mode == "distributed":
        await queue_for_workers(context)
        return
    report = await enrich_pending(
        context.settings,
        context.store,
        limit=BATCH,
        clock=context.clock,
        tracker=context.tracker,
    )
    if report.attempted:
        log.info(
            "enriched %d of %d pending page(s); %d still pending",
            report.enriched,
            report.attempted,
            report.still_pending,
        )


async def queue_for_workers(context: JobContext) -> None:
    """Queue one batch of pending pages for the distributed workers, if any page waits."""
    from aggregator.distributed import defer_page_batch

    if not context.store.pending_pages(1, max_attempts=MAX_ATTEMPTS):
        return
    if await defer_page_batch(context.settings, limit=BATCH):
        log.info("queued a batch of up to %d pending page(s) for the workers", BATCH)
