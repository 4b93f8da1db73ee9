"""The prune job: records past their retention leave the store and the export tree.

Global ``scheduler.retention_days`` and per-topic ``topics[].retention_days``; the rule is in
`aggregator.daemon_ops`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aggregator.daemon import JobContext
from aggregator.daemon_ops import prune_records, topic_cutoffs

log = logging.getLogger(__name__)


async def run(context: JobContext) -> None:
    """Prune records past the global or their topics' retention (nothing when neither is set)."""
    now = context.clock()
    days = context.daemon.retention_days
    cutoff = now - timedelta(days=days) if days is not None else None
    topics = topic_cutoffs(context.settings, now)
    if cutoff is None and not topics:
        return
    removed = await asyncio.to_thread(
        prune_records, context.settings, context.store, cutoff, topics
    )
    if removed:
        log.info("pruned %d record(s) past retention", removed)
