"""The retention unit of work behind the prune job (an `aggregator prune` command may share it).

Retention rule: a record goes when it is older than the global ``scheduler.retention_days``,
or when it has topics, EVERY one of them sets ``retention_days``, and it is older than the
longest of those (a topic retention only ever shortens how long a record is kept; a record
that also belongs to a topic without its own retention stays until the global limit).

The export job needs none here: it calls `operations.export_configured` (tree + feeds).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from aggregator.export.files import ExportWriter
from aggregator.settings import Settings
from aggregator.store import Store


def topic_cutoffs(settings: Settings, now: datetime) -> dict[str, datetime]:
    """topic name → now − its retention_days, for the topics that set one."""
    return {
        topic.name: now - timedelta(days=topic.retention_days)
        for topic in settings.topics
        if topic.retention_days is not None
    }


def prune_records(
    settings: Settings,
    store: Store,
    cutoff: datetime | None,
    topics: Mapping[str, datetime] | None = None,
) -> int:
    """Remove records dated before `cutoff` (None: no global limit), and those past the
    retention of all their `topics`, with their exported files; return how many."""
    urls = store.prune_older_than(cutoff) if cutoff is not None else ()
    urls += store.prune_by_topics(topics or {})
    if urls:
        ExportWriter(Path(settings.export.dir)).remove(urls)
    return len(urls)
