"""Replacing a record's topics and related links (used by `Store.set_topics/set_related`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, delete, insert, select

from aggregator.store.convert import topic_rows
from aggregator.store.tables import RecordRow, RelatedRow, TopicRow


def replace_topics(session: Session, row: RecordRow, topics: Sequence[str]) -> bool:
    """Make `topics` the topics of `row`; return whether anything changed."""
    assert row.id is not None
    current = session.exec(
        select(TopicRow.topic)
        .where(col(TopicRow.record_id) == row.id)
        .order_by(col(TopicRow.position))
    ).all()
    if list(current) == list(topics):
        return False
    session.exec(delete(TopicRow).where(col(TopicRow.record_id) == row.id))
    if topics:
        session.execute(insert(TopicRow), topic_rows(row.id, topics))
    return True


def replace_related(session: Session, row: RecordRow, related_ids: Sequence[int]) -> bool:
    """Make links to `related_ids` (minus `row` itself and repeats) the related entries of `row`.

    Imported snapshots are dropped too. Returns whether anything changed.
    """
    assert row.id is not None
    wanted = [i for i in dict.fromkeys(related_ids) if i != row.id]
    current = session.exec(select(RelatedRow).where(col(RelatedRow.record_id) == row.id)).all()
    ordered = sorted(current, key=lambda entry: entry.position)
    if [(e.related_record_id, e.snapshot) for e in ordered] == [(i, None) for i in wanted]:
        return False
    session.exec(delete(RelatedRow).where(col(RelatedRow.record_id) == row.id))
    if wanted:
        links = [
            {"record_id": row.id, "position": position, "related_record_id": related_id}
            for position, related_id in enumerate(wanted)
        ]
        session.execute(insert(RelatedRow), links)
    return True
