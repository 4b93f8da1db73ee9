"""The export tree's manifest file, its store mark, and whether a crawl needs the tree
rewritten.

Kept apart from the writers so that a crawl where nothing changed decides that without
importing them (lxml, cryptography, the feed and Markdown renderers).

The store mark (`STORE_MARK`) is the store's change marker (latest record `updated_at`,
record count) read before the last complete export: a tree whose mark differs from the
store's now is behind it, whatever the last crawl brought. That is how a fetch that finds
nothing new still exports what an interrupted run stored but never exported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from aggregator.models import SourceReport

MANIFEST = ".manifest.json"
STORE_MARK = ".store-mark.json"
StoreMarker = tuple[datetime | None, int]
"""`Store.change_marker()`: (latest record `updated_at` in UTC, number of records)."""


def export_is_stale(
    export_dir: Path, reports: Iterable[SourceReport], marker: Callable[[], StoreMarker]
) -> bool:
    """Whether the export tree in `export_dir` may be behind the store after a crawl with
    these reports; `marker` reads the store's change marker (only when needed).

    Nothing new or updated, a tree in place, and its store mark equal to the marker, means
    nothing to rewrite: an all-304 re-poll then costs only the conditional GETs.
    """
    changed = any(report.new or report.updated for report in reports)
    if changed or not (export_dir / MANIFEST).exists():
        return True
    try:
        written = (export_dir / STORE_MARK).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return written != store_mark_text(marker())


def store_mark_text(marker: StoreMarker) -> str:
    """The content of the store mark file for `marker`."""
    latest, count = marker
    stamp = latest.isoformat() if latest is not None else None
    return json.dumps({"version": 1, "updated_at": stamp, "records": count}) + "\n"
