"""Story-level reads: how big a story is, which providers cover it, when it was first seen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from aggregator.store.chunks import chunked
from aggregator.store.source_rows import utc
from aggregator.store.tables import RecordRow


@dataclass(frozen=True, slots=True)
class StorySummary:
    """One story as the extended export shows it."""

    id: str
    size: int
    providers: tuple[str, ...]
    first_seen: datetime | None


def story_summaries(session: Session, story_ids: Iterable[str]) -> dict[str, StorySummary]:
    """Summaries for the given story ids (unknown ids are left out)."""
    sizes: dict[str, int] = {}
    first: dict[str, datetime | None] = {}
    providers: dict[str, set[str]] = {}
    for part in chunked(sorted(set(story_ids))):
        story = col(RecordRow.story_id)
        totals = select(story, func.count(), func.min(RecordRow.created_at)).where(story.in_(part))
        for story_id, size, first_seen in session.exec(totals.group_by(story)):
            if story_id is None:
                continue
            sizes[story_id] = size
            first[story_id] = utc(first_seen) if first_seen else None
        pairs = select(story, RecordRow.provider_domain).where(story.in_(part)).distinct()
        for story_id, domain in session.exec(pairs):
            if story_id is not None:
                providers.setdefault(story_id, set()).add(domain)
    return {
        sid: StorySummary(sid, sizes[sid], tuple(sorted(providers.get(sid, ()))), first[sid])
        for sid in sizes
    }
