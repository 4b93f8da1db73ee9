"""Retention and change detection: pruning old records, and the marker the export job watches.

prune(session, cutoff)   delete records dated (published, else first stored) before
                         `cutoff` with their images, topics, related entries, and the
                         related links other records hold to them → their web URLs
change_marker(session)   (max(updated_at), count) — differs whenever a record was
                         written or deleted since the last look
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, delete, func, or_, select

from aggregator.store.convert import utc
from aggregator.store.identity import chunked
from aggregator.store.tables import ImageRow, RecordRow, RelatedRow, TopicRow

ChangeMarker = tuple[datetime | None, int]


def prune(session: Session, cutoff: datetime) -> tuple[str, ...]:
    """Delete every record older than `cutoff` and what hangs off it; return their web URLs."""
    dated = func.coalesce(col(RecordRow.published_at), col(RecordRow.created_at))
    old = session.exec(select(RecordRow.id, RecordRow.web_url).where(dated < cutoff)).all()
    ids = [row_id for row_id, _ in old if row_id is not None]
    for part in chunked(ids):
        from_or_to = or_(
            col(RelatedRow.record_id).in_(part), col(RelatedRow.related_record_id).in_(part)
        )
        session.exec(delete(RelatedRow).where(from_or_to))
        session.exec(delete(ImageRow).where(col(ImageRow.record_id).in_(part)))
        session.exec(delete(TopicRow).where(col(TopicRow.record_id).in_(part)))
        session.exec(delete(RecordRow).where(col(RecordRow.id).in_(part)))
    return tuple(web_url for _, web_url in old)


def change_marker(session: Session) -> ChangeMarker:
    """The latest `updated_at` of any record and the number of records."""
    latest, count = session.exec(
        select(func.max(col(RecordRow.updated_at)), func.count()).select_from(RecordRow)
    ).one()
    return utc(latest), int(count)
