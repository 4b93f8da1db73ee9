"""The retention unit of work behind the prune job (an `aggregator prune` command may share it).

The export job needs none here: it calls `operations.export_configured` (tree + feeds).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from aggregator.export.files import ExportWriter
from aggregator.settings import Settings
from aggregator.store import Store


def prune_records(settings: Settings, store: Store, cutoff: datetime) -> int:
    """Remove records dated before `cutoff` and their exported files; return how many."""
    urls = store.prune_older_than(cutoff)
    if urls:
        ExportWriter(Path(settings.export.dir)).remove(urls)
    return len(urls)
