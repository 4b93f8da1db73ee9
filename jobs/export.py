"""The export job: regenerate the export tree and feeds when the records changed since the last
export (`operations.export_configured`, as `aggregator fetch` does after a crawl).

Debounced: it runs every `export_debounce` seconds and exports only when the store's change
marker (latest updated_at, record count) moved, so a burst of crawls costs one export.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aggregator import metrics
from aggregator.daemon import JobContext
from aggregator.operations import export_configured
from aggregator.store.retention import ChangeMarker

log = logging.getLogger(__name__)


class ExportJob:
    """Remembers the change marker of its last export (the first run always exports)."""

    def __init__(self) -> None:
        self.exported: ChangeMarker | None = None

    async def run(self, context: JobContext) -> None:
        """Export when the records changed; the marker is read before exporting, so a
        change made during the export triggers the next one."""
        marker = context.store.change_marker()
        if marker == self.exported:
            return
        started = time.monotonic()
        summaries = await asyncio.to_thread(export_configured, context.settings, context.store)
        metrics.observe_export(time.monotonic() - started)
        self.exported = marker
        log.info("exported: %s", "; ".join(summaries))
