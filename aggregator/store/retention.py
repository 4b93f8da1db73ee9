"""Retention and change detection: pruning old records, and the marker the export job watches.

prune(session, cutoff)   delete records dated (published, else first stored) before
                         `cutoff` with their images, topics, related entries, and the
                         related links other records hold to them → their web URLs
prune_by_topics(session, cutoffs)
                         per-topic retention: delete records (as above) that have topics,
                         ALL of them in `cutoffs`, and that are dated before the EARLIEST
                         cutoff of their topics (the longest retention among them wins; a
                         topic without its own retention keeps its records to the global one)
change_marker(session)   (max(updated_at), count) — differs whenever a record was
                         written or deleted since the last look
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlmodel import Session, col, delete, func, or_, select

from aggregator.store.chunks import chunked
from aggregator.store.source_rows import utc
from aggregator.store.tables import ImageRow, RecordRow, RefreshQueueRow, RelatedRow, TopicRow

ChangeMarker = tuple[datetime | None, int]


def prune(session: Session, cutoff: datetime) -> tuple[str, ...]:
    """Delete every record older than `cutoff` and what hangs off it; return their web URLs."""
    dated = func.coalesce(col(RecordRow.published_at), col(RecordRow.created_at))
    old = session.exec(select(RecordRow.id, RecordRow.web_url).where(dated < cutoff)).all()
    _delete_records(session, [row_id for row_id, _ in old if row_id is not None])
    return tuple(web_url for _, web_url in old)


def prune_by_topics(session: Session, cutoffs: Mapping[str, datetime]) -> tuple[str, ...]:
    """Delete the records whose topics all have a retention that has run out for them."""
    if not cutoffs:
        return ()
    dated = func.coalesce(col(RecordRow.published_at), col(RecordRow.created_at))
    candidates = session.exec(
        select(RecordRow.id, RecordRow.web_url, dated)
        .join(TopicRow, col(TopicRow.record_id) == col(RecordRow.id))
        .where(dated < max(cutoffs.values()), col(TopicRow.topic).in_(list(cutoffs)))
        .distinct()
    ).all()
    topics = _topics_of(session, [row_id for row_id, _, _ in candidates if row_id is not None])
    doomed: dict[int, str] = {}
    for row_id, web_url, when in candidates:
        names = topics.get(row_id or 0, [])
        if row_id is None or not names or any(name not in cutoffs for name in names):
            continue
        moment = utc(when)
        if moment is not None and moment < min(cutoffs[name] for name in names):
            doomed[row_id] = web_url
    _delete_records(session, list(doomed))
    return tuple(doomed.values())


def _topics_of(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for part in chunked(ids):
        rows = session.exec(
            select(TopicRow.record_id, TopicRow.topic).where(col(TopicRow.record_id).in_(part))
        )
        for record_id, topic in rows:
            found[record_id].append(topic)
    return found


def _delete_records(session: Session, ids: Sequence[int]) -> None:
    """Delete records `ids` with their images, topics, related entries, links to them and
    queued refreshes."""
    for part in chunked(ids):
        from_or_to = or_(
            col(RelatedRow.record_id).in_(part), col(RelatedRow.related_record_id).in_(part)
        )
        session.exec(delete(RelatedRow).where(from_or_to))
        session.exec(delete(ImageRow).where(col(ImageRow.record_id).in_(part)))
        session.exec(delete(TopicRow).where(col(TopicRow.record_id).in_(part)))
        session.exec(delete(RefreshQueueRow).where(col(RefreshQueueRow.record_id).in_(part)))
        session.exec(delete(RecordRow).where(col(RecordRow.id).in_(part)))


def change_marker(session: Session) -> ChangeMarker:
    """The latest `updated_at` of any record and the number of records."""
    latest, count = session.exec(
        select(func.max(col(RecordRow.updated_at)), func.count()).select_from(RecordRow)
    ).one()
    return utc(latest), int(count)
