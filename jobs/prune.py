"""The prune job: records older than `retention_days` leave the store and the export tree."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aggregator.daemon import JobContext
from aggregator.daemon_ops import prune_records

log = logging.getLogger(__name__)


async def run(context: JobContext) -> None:
    """Prune records dated before now − retention_days (nothing when retention is off)."""
    days = context.daemon.retention_days
    if days is None:
        return
    cutoff = context.clock() - timedelta(days=days)
    removed = await asyncio.to_thread(prune_records, context.settings, context.store, cutoff)
    if removed:
        log.info("pruned %d record(s) dated before %s", removed, cutoff.isoformat())
