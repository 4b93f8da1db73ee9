"""The export tree's manifest file, its store mark, and whether a crawl needs the tree
rewritten.

Kept apart from the writers so that a crawl where nothing changed decides that without
importing them (lxml, cryptography, the feed and Markdown renderers).

The store mark (`STORE_MARK`) is the store's change marker (latest record `updated_at`,
record count) read before the last complete export, with a fingerprint of the settings that
shape the tree (`export_fingerprint`): a tree whose mark differs from the store's and the
settings' now is behind them, whatever the last crawl brought. That is how a fetch that
finds nothing new still exports what an interrupted run stored but never exported, or the
feeds of a format or topic just added to the config.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.models import SourceReport

if TYPE_CHECKING:
    from aggregator.settings import Settings

MANIFEST = ".manifest.json"
STORE_MARK = ".store-mark.json"
StoreMarker = tuple[datetime | None, int]
"""`Store.change_marker()`: (latest record `updated_at` in UTC, number of records)."""


def export_is_stale(
    export_dir: Path,
    reports: Iterable[SourceReport],
    marker: Callable[[], StoreMarker],
    fingerprint: str,
) -> bool:
    """Whether the export tree in `export_dir` may be behind the store after a crawl with
    these reports, or behind the settings whose `export_fingerprint` is `fingerprint`;
    `marker` reads the store's change marker (only when needed).

    Nothing new or updated, a tree in place, and its store mark equal to the marker and
    the fingerprint, means nothing to rewrite: an all-304 re-poll then costs only the
    conditional GETs.
    """
    changed = any(report.new or report.updated for report in reports)
    if changed or not (export_dir / MANIFEST).exists():
        return True
    try:
        written = (export_dir / STORE_MARK).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return written != store_mark_text(marker(), fingerprint)


def export_fingerprint(settings: Settings) -> str:
    """A digest of what in the settings shapes the export tree: the export section (dir,
    formats, feed size, base URL) and the topics' names (a feed per topic)."""
    shape = {
        "export": settings.export.model_dump(mode="json"),
        "topics": [topic.name for topic in settings.topics],
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def store_mark_text(marker: StoreMarker, fingerprint: str) -> str:
    """The content of the store mark file for `marker` and the settings' `fingerprint`."""
    latest, count = marker
    stamp = latest.isoformat() if latest is not None else None
    mark = {"version": 1, "updated_at": stamp, "records": count, "settings": fingerprint}
    return json.dumps(mark) + "\n"
