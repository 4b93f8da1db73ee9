"""Read queries: load records with their children in bulk, and page through them newest first.

Records are read with SQLAlchemy Core selects (plain rows, no ORM instances): one select for
a page of records, then one IN query per child table (images, topics, related) and one for
the records that related entries link to (plus their images). Only the finished frozen
values (`StoredRecord`, `Record`) leave this module.

Paging is keyset-based on (published_at DESC, id DESC), then undated records by id DESC,
so memory stays bounded by the page size and concurrent inserts do not shift pages.
Each page is read in its own short transaction; nothing stays open between pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, Select, and_, or_, select
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from aggregator.models import Image, Provider, RelatedRecord
from aggregator.store.chunks import chunked
from aggregator.store.convert import record_from_row, related_from_snapshot
from aggregator.store.engine import transaction
from aggregator.store.source_rows import utc
from aggregator.store.tables import ImageRow, RecordRow, RelatedRow, TopicRow
from aggregator.store.values import StoredRecord

PAGE_SIZE = 500
_Child = TypeVar("_Child", ImageRow, TopicRow, RelatedRow)

_RECORD_FIELDS = (
    "id",
    "web_url",
    "title",
    "provider_name",
    "provider_domain",
    "category",
    "excerpt",
    "published_at",
    "amp_web_url",
    "cdn_amp_web_url",
    "type",
    "quality",
    "heat",
    "is_published",
    "secured",
    "source_name",
    "feed_url",
    "guid",
    "fetched_at",
    "entry_hash",
    "page_pending",
    "categories",
    "text",
    "quality_reasons",
    "story_id",
    "content_hash",
    "updated_at",
)
RELATED_FIELDS = (
    "id",
    "title",
    "excerpt",
    "published_at",
    "web_url",
    "amp_web_url",
    "cdn_amp_web_url",
    "type",
    "provider_name",
    "provider_domain",
    "quality",
)
Query = Select[*tuple[Any, ...]]
CoreRow = Row[*tuple[Any, ...]]
RecordLike = RecordRow | CoreRow  # an ORM row, or a Core row of the same columns


def _columns(names: Iterable[str]) -> list[Any]:
    return [col(getattr(RecordRow, name)) for name in names]


def children_by_record(
    session: Session, model: type[_Child], record_ids: Iterable[int]
) -> dict[int, list[_Child]]:
    """Child rows of `model` (ORM instances) for each record id, in position order."""
    grouped: dict[int, list[_Child]] = {}
    for part in chunked(sorted(set(record_ids))):
        statement = (
            orm_select(model)
            .where(col(model.record_id).in_(part))
            .order_by(col(model.record_id), col(model.position))
        )
        for child in session.exec(statement):
            grouped.setdefault(child.record_id, []).append(child)
    return grouped


def rows_by_id(session: Session, ids: Iterable[int]) -> dict[int, RecordRow]:
    """Record rows (ORM instances) for `ids` (missing ids are left out)."""
    found: dict[int, RecordRow] = {}
    for part in chunked(sorted(set(ids))):
        for row in session.exec(orm_select(RecordRow).where(col(RecordRow.id).in_(part))):
            assert row.id is not None
            found[row.id] = row
    return found


@dataclass(frozen=True, slots=True)
class _Children:
    """The children of one batch of records, by record id."""

    images: dict[int, tuple[Image, ...]] = field(default_factory=dict)
    topics: dict[int, tuple[str, ...]] = field(default_factory=dict)
    related: dict[int, tuple[RelatedRecord, ...]] = field(default_factory=dict)


def _grouped(
    connection: Connection, statement: Callable[[list[int]], Query], ids: Iterable[int]
) -> Iterator[CoreRow]:
    for part in chunked(sorted(set(ids))):
        yield from connection.execute(statement(part))


def images_by_record(connection: Connection, ids: Iterable[int]) -> dict[int, tuple[Image, ...]]:
    """The images of each record id, in position order (ids without images left out)."""

    def statement(part: list[int]) -> Query:
        return (
            select(
                col(ImageRow.record_id),
                col(ImageRow.url),
                col(ImageRow.width),
                col(ImageRow.height),
                col(ImageRow.title),
            )
            .where(col(ImageRow.record_id).in_(part))
            .order_by(col(ImageRow.record_id), col(ImageRow.position))
        )

    grouped: dict[int, list[Image]] = {}
    for record_id, url, width, height, title in _grouped(connection, statement, ids):
        image = Image(url=url, width=width, height=height, title=title)
        grouped.setdefault(record_id, []).append(image)
    return {record_id: tuple(images) for record_id, images in grouped.items()}


def topics_by_record(connection: Connection, ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The topics of each record id, best first (ids without topics left out)."""

    def statement(part: list[int]) -> Query:
        return (
            select(col(TopicRow.record_id), col(TopicRow.topic))
            .where(col(TopicRow.record_id).in_(part))
            .order_by(col(TopicRow.record_id), col(TopicRow.position))
        )

    grouped: dict[int, list[str]] = {}
    for record_id, topic in _grouped(connection, statement, ids):
        grouped.setdefault(record_id, []).append(topic)
    return {record_id: tuple(topics) for record_id, topics in grouped.items()}


def related_entries(connection: Connection, ids: Iterable[int]) -> list[CoreRow]:
    """(record_id, related_record_id, snapshot) rows of these records, in position order."""

    def statement(part: list[int]) -> Query:
        return (
            select(
                col(RelatedRow.record_id),
                col(RelatedRow.related_record_id),
                col(RelatedRow.snapshot),
            )
            .where(col(RelatedRow.record_id).in_(part))
            .order_by(col(RelatedRow.record_id), col(RelatedRow.position))
        )

    return list(_grouped(connection, statement, ids))


def linked_records(
    connection: Connection, ids: set[int], known_images: dict[int, tuple[Image, ...]]
) -> dict[int, RelatedRecord]:
    """Related entries rendered from the current rows of the records with `ids`."""

    def statement(part: list[int]) -> Query:
        return select(*_columns(RELATED_FIELDS)).where(col(RecordRow.id).in_(part))

    rows = list(_grouped(connection, statement, ids))
    images = dict(known_images)
    images.update(images_by_record(connection, (r.id for r in rows if r.id not in images)))
    return {row.id: related_from_columns(row, images.get(row.id, ())) for row in rows}


def related_from_columns(row: CoreRow, images: tuple[Image, ...]) -> RelatedRecord:
    """A record rendered as a related entry, from a row with the `RELATED_FIELDS` columns."""
    return RelatedRecord(
        title=row.title,
        excerpt=row.excerpt,
        published=row.published_at,
        web_url=row.web_url,
        amp_web_url=row.amp_web_url,
        cdn_amp_web_url=row.cdn_amp_web_url,
        type=row.type,
        provider=Provider(name=row.provider_name, domain=row.provider_domain),
        quality=row.quality,
        images=images,
    )


def grouped_related(
    entries: Iterable[CoreRow], linked: Mapping[int, RelatedRecord]
) -> dict[int, tuple[RelatedRecord, ...]]:
    """Each record's related entries, in order, from `related_entries` rows: the linked
    records as rendered in `linked`, the others rebuilt from their snapshots."""
    grouped: dict[int, list[RelatedRecord]] = {}
    for record_id, linked_id, snapshot in entries:
        target = linked.get(linked_id) if linked_id is not None else None
        if target is None and snapshot:
            target = related_from_snapshot(snapshot)
        if target is not None:
            grouped.setdefault(record_id, []).append(target)
    return {record_id: tuple(items) for record_id, items in grouped.items()}


def _load_children(connection: Connection, ids: list[int]) -> _Children:
    images = images_by_record(connection, ids)
    entries = related_entries(connection, ids)
    wanted = {entry.related_record_id for entry in entries} - {None}
    linked = linked_records(connection, wanted, images)
    related = grouped_related(entries, linked)
    return _Children(images, topics_by_record(connection, ids), related)


def _stored(row: RecordLike, children: _Children) -> StoredRecord:
    record_id = row.id
    assert record_id is not None
    record = record_from_row(
        row,
        topics=children.topics.get(record_id, ()),
        images=children.images.get(record_id, ()),
        related=children.related.get(record_id, ()),
    )
    return StoredRecord(record_id, record, row.story_id, row.content_hash, row.updated_at)


def _assemble(connection: Connection, rows: Sequence[RecordLike]) -> list[StoredRecord]:
    children = _load_children(connection, [row.id for row in rows if row.id is not None])
    return [_stored(row, children) for row in rows]


def load_stored(session: Session, rows: Sequence[RecordRow]) -> list[StoredRecord]:
    """StoredRecords for `rows`, children and related entries loaded in a few queries."""
    session.flush()  # the children are read with Core, which does not autoflush the session
    return _assemble(session.connection(), rows)


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """The filters of `Store.iter_records`."""

    topic: str | None = None
    since: datetime | None = None
    published_only: bool = False
    updated_after: datetime | None = None

    def apply(self, statement: Query) -> Query:
        """`statement` narrowed by every filter that is set."""
        if self.topic is not None:
            tagged = select(col(TopicRow.record_id)).where(col(TopicRow.topic) == self.topic)
            statement = statement.where(col(RecordRow.id).in_(tagged))
        if self.since is not None:
            statement = statement.where(col(RecordRow.published_at) >= utc(self.since))
        if self.published_only:
            statement = statement.where(col(RecordRow.is_published).is_(True))
        if self.updated_after is not None:
            statement = statement.where(col(RecordRow.updated_at) > utc(self.updated_after))
        return statement


def _records() -> Query:
    return select(*_columns(_RECORD_FIELDS))


def _dated_page(flt: RecordFilter, after: CoreRow | None, size: int) -> Query:
    published = col(RecordRow.published_at)
    statement = flt.apply(_records().where(published.is_not(None)))
    if after is not None:
        statement = statement.where(
            or_(
                published < after.published_at,
                and_(published == after.published_at, col(RecordRow.id) < after.id),
            )
        )
    return statement.order_by(published.desc(), col(RecordRow.id).desc()).limit(size)


def _undated_page(flt: RecordFilter, after: CoreRow | None, size: int) -> Query:
    statement = flt.apply(_records().where(col(RecordRow.published_at).is_(None)))
    if after is not None:
        statement = statement.where(col(RecordRow.id) < after.id)
    return statement.order_by(col(RecordRow.id).desc()).limit(size)


def iter_stored(
    engine: Engine, flt: RecordFilter, page_size: int = PAGE_SIZE
) -> Iterator[StoredRecord]:
    """Matching records newest first (undated ones last), one page in memory at a time."""
    pages = [_dated_page] if flt.since is not None else [_dated_page, _undated_page]
    for page in pages:
        after: CoreRow | None = None
        while True:
            with transaction(engine, "iter_records") as session:
                connection = session.connection()
                rows = list(connection.execute(page(flt, after, page_size)))
                stored = _assemble(connection, rows)
            yield from stored
            if len(rows) < page_size:
                break
            after = rows[-1]
