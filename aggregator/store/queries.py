"""Read queries: load records with their children in bulk, and page through them newest first.

Paging is keyset-based on (published_at DESC, id DESC), then undated records by id DESC,
so memory stays bounded by the page size and concurrent inserts do not shift pages.
Each page is read in its own short transaction; nothing stays open between pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, and_, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from aggregator.models import RelatedRecord
from aggregator.store.convert import related_from_row, related_from_snapshot, stored_from_row, utc
from aggregator.store.engine import transaction
from aggregator.store.identity import chunked
from aggregator.store.tables import ImageRow, RecordRow, RelatedRow, TopicRow
from aggregator.store.values import StoredRecord

PAGE_SIZE = 200
_Child = TypeVar("_Child", ImageRow, TopicRow, RelatedRow)


def children_by_record(
    session: Session, model: type[_Child], record_ids: Iterable[int]
) -> dict[int, list[_Child]]:
    """Child rows of `model` for each record id, in position order."""
    grouped: dict[int, list[_Child]] = {}
    for part in chunked(sorted(set(record_ids))):
        statement = (
            select(model)
            .where(col(model.record_id).in_(part))
            .order_by(col(model.record_id), col(model.position))
        )
        for child in session.exec(statement):
            grouped.setdefault(child.record_id, []).append(child)
    return grouped


def rows_by_id(session: Session, ids: Iterable[int]) -> dict[int, RecordRow]:
    """Record rows for `ids` (missing ids are left out)."""
    found: dict[int, RecordRow] = {}
    for part in chunked(sorted(set(ids))):
        for row in session.exec(select(RecordRow).where(col(RecordRow.id).in_(part))):
            assert row.id is not None
            found[row.id] = row
    return found


def load_stored(session: Session, rows: Sequence[RecordRow]) -> list[StoredRecord]:
    """StoredRecords for `rows`, children and related entries loaded in a few queries."""
    ids = [row.id for row in rows if row.id is not None]
    images = children_by_record(session, ImageRow, ids)
    topics = children_by_record(session, TopicRow, ids)
    related = children_by_record(session, RelatedRow, ids)
    linked_ids = {r.related_record_id for rs in related.values() for r in rs}
    linked = rows_by_id(session, (i for i in linked_ids if i is not None))
    linked_images = children_by_record(session, ImageRow, linked)

    def render(entry: RelatedRow) -> RelatedRecord | None:
        if entry.related_record_id is not None:
            target = linked.get(entry.related_record_id)
            if target is not None:
                return related_from_row(target, linked_images.get(entry.related_record_id, []))
        return related_from_snapshot(entry.snapshot) if entry.snapshot else None

    stored = []
    for row in rows:
        assert row.id is not None
        entries = [render(entry) for entry in related.get(row.id, [])]
        rendered = [entry for entry in entries if entry is not None]
        stored.append(
            stored_from_row(row, images.get(row.id, []), topics.get(row.id, []), rendered)
        )
    return stored


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """The filters of `Store.iter_records`."""

    topic: str | None = None
    since: datetime | None = None
    published_only: bool = False
    updated_after: datetime | None = None

    def apply(self, statement: SelectOfScalar[RecordRow]) -> SelectOfScalar[RecordRow]:
        """`statement` narrowed by every filter that is set."""
        if self.topic is not None:
            tagged = select(TopicRow.record_id).where(col(TopicRow.topic) == self.topic)
            statement = statement.where(col(RecordRow.id).in_(tagged))
        if self.since is not None:
            statement = statement.where(col(RecordRow.published_at) >= utc(self.since))
        if self.published_only:
            statement = statement.where(col(RecordRow.is_published).is_(True))
        if self.updated_after is not None:
            statement = statement.where(col(RecordRow.updated_at) > utc(self.updated_after))
        return statement


def _dated_page(flt: RecordFilter, after: RecordRow | None, size: int) -> SelectOfScalar[RecordRow]:
    published = col(RecordRow.published_at)
    statement = flt.apply(select(RecordRow).where(published.is_not(None)))
    if after is not None:
        statement = statement.where(
            or_(
                published < after.published_at,
                and_(published == after.published_at, col(RecordRow.id) < after.id),
            )
        )
    return statement.order_by(published.desc(), col(RecordRow.id).desc()).limit(size)


def _undated_page(
    flt: RecordFilter, after: RecordRow | None, size: int
) -> SelectOfScalar[RecordRow]:
    statement = flt.apply(select(RecordRow).where(col(RecordRow.published_at).is_(None)))
    if after is not None:
        statement = statement.where(col(RecordRow.id) < after.id)
    return statement.order_by(col(RecordRow.id).desc()).limit(size)


def iter_stored(
    engine: Engine, flt: RecordFilter, page_size: int = PAGE_SIZE
) -> Iterator[StoredRecord]:
    """Matching records newest first (undated ones last), one page in memory at a time."""
    pages = [_dated_page] if flt.since is not None else [_dated_page, _undated_page]
    for page in pages:
        after: RecordRow | None = None
        while True:
            with transaction(engine, "iter_records") as session:
                rows = list(session.exec(page(flt, after, page_size)))
                stored = load_stored(session, rows)
            yield from stored
            if len(rows) < page_size:
                break
            after = rows[-1]
