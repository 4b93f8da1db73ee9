"""The page-enrichment job: fetch the article pages still waiting (see aggregator.enrich)."""

from __future__ import annotations

import logging

from aggregator.daemon import JobContext
from aggregator.enrich import enrich_pending

log = logging.getLogger(__name__)

BATCH = 50


async def run(context: JobContext) -> None:
    """Enrich up to BATCH records whose page could not be fetched with their entry."""
    if context.stopping.is_set():
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
