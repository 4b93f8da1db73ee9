"""The export tree's manifest file, and whether a crawl needs the tree rewritten.

Kept apart from the writers so that a crawl where nothing changed decides that without
importing them (lxml, cryptography, the feed and Markdown renderers).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aggregator.models import SourceReport

MANIFEST = ".manifest.json"


def export_is_stale(export_dir: Path, reports: Iterable[SourceReport]) -> bool:
    """Whether a crawl with these reports can have changed the export tree in `export_dir`.

    Nothing new or updated, and an export tree already in place, means nothing to rewrite:
    an all-304 re-poll then costs only the conditional GETs.
    """
    changed = any(report.new or report.updated for report in reports)
    return changed or not (export_dir / MANIFEST).exists()
