"""The published records as the export tree needs them: lean rows, few queries, shared entries.

`iter_published` yields what `Store.iter_records(published_only=True)` yields, in the same
order (newest first, undated last, ties by id descending), as bare `Record`s without the
private fields no exporter reads: `text`, `quality_reasons` and the feed categories of the
provenance are left empty, so those columns (two of them JSON) are neither read nor decoded.

1. One query lists the ids of the published records in export order. (Paging by keyset
   sorted every published row, whole rows, again for each page: on SQLite the planner
   picks the `is_published` index and a temporary B-tree for the ORDER BY.)
2. Per page of ids, in its own short transaction: the rows (still published), their images,
   topics and related entries.
3. A related entry linking to a record of the same page is rendered from that page's row;
   one rendered for a recent page is reused (the last `REMEMBERED`, since related records
   are mostly published close together); only the others are read. Within one run an entry
   may thus show a linked record as it was a few pages earlier, never older than the run.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from aggregator.models import Image, Record, RelatedRecord
from aggregator.store.convert import record_from_row
from aggregator.store.engine import transaction
from aggregator.store.queries import (
    RELATED_FIELDS,
    CoreRow,
    grouped_related,
    images_by_record,
    linked_records,
    related_entries,
    related_from_columns,
    topics_by_record,
)
from aggregator.store.tables import RecordRow

PAGE_SIZE = 500
REMEMBERED = 2000  # rendered related entries kept for the next pages (about 1 KB each)

_FIELDS = (
    *RELATED_FIELDS,
    "category",
    "heat",
    "is_published",
    "secured",
    "source_name",
    "feed_url",
    "guid",
    "fetched_at",
    "entry_hash",
    "page_pending",
)
_COLUMNS = [col(getattr(RecordRow, name)) for name in _FIELDS]


def iter_published(engine: Engine) -> Iterator[Record]:
    """The published records, newest first, without their private fields (see above)."""
    reader = ExportReader(engine)
    ids = reader.published_ids()
    for start in range(0, len(ids), PAGE_SIZE):
        yield from reader.page(ids[start : start + PAGE_SIZE])


class ExportReader:
    """Steps 1 and 2 above, apart: the ids in export order, then any page of them.

    Several readers (one a process) may share out the pages of one id list; each keeps the
    related entries it rendered last for its own next pages."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._remembered = _Remembered(REMEMBERED)

    def published_ids(self) -> array[int]:
        """The ids of the published records, newest first (undated last, ties by id)."""
        return _published_ids(self._engine)

    def page(self, ids: Iterable[int]) -> list[Record]:
        """The records of `ids` still published, in the order of `ids`, in one transaction."""
        with transaction(self._engine, "iter_export_records") as session:
            return _read_page(session.connection(), ids, self._remembered)


def _published_ids(engine: Engine) -> array[int]:
    published = col(RecordRow.published_at)
    statement = (
        select(col(RecordRow.id))
        .where(col(RecordRow.is_published).is_(True))
        .order_by(published.desc().nulls_last(), col(RecordRow.id).desc())
    )
    with transaction(engine, "published_ids") as session:
        rows = session.connection().execute(statement)
        return array("q", (record_id for (record_id,) in rows if record_id is not None))


def _read_page(connection: Connection, ids: Iterable[int], remembered: _Remembered) -> list[Record]:
    wanted = list(ids)
    statement = select(*_COLUMNS).where(
        col(RecordRow.id).in_(wanted), col(RecordRow.is_published).is_(True)
    )
    by_id = {row.id: row for row in connection.execute(statement)}
    rows = [by_id[record_id] for record_id in wanted if record_id in by_id]
    images = images_by_record(connection, by_id)
    topics = topics_by_record(connection, by_id)
    related = _related(connection, by_id, images, remembered)
    return [
        record_from_row(
            row,
            topics=topics.get(row.id, ()),
            images=images.get(row.id, ()),
            related=related.get(row.id, ()),
            private=False,
        )
        for row in rows
    ]


def _related(
    connection: Connection,
    page: Mapping[int, CoreRow],
    images: Mapping[int, tuple[Image, ...]],
    remembered: _Remembered,
) -> dict[int, tuple[RelatedRecord, ...]]:
    """Each page record's related entries: linked records rendered, snapshots rebuilt."""
    entries = related_entries(connection, page)
    linked: dict[int, RelatedRecord] = {}
    missing: set[int] = set()
    for linked_id in {entry.related_record_id for entry in entries} - {None}:
        row = page.get(linked_id)
        if row is not None:
            linked[linked_id] = related_from_columns(row, images.get(linked_id, ()))
        elif (kept := remembered.get(linked_id)) is not None:
            linked[linked_id] = kept
        else:
            missing.add(linked_id)
    linked.update(linked_records(connection, missing, {}))
    remembered.update(linked)
    return grouped_related(entries, linked)


class _Remembered:
    """The related entries rendered last, by linked record id, at most `size` of them."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[int, RelatedRecord] = OrderedDict()

    def get(self, record_id: int) -> RelatedRecord | None:
        entry = self._entries.get(record_id)
        if entry is not None:
            self._entries.move_to_end(record_id)
        return entry

    def update(self, entries: Mapping[int, RelatedRecord]) -> None:
        for record_id, entry in entries.items():
            self._entries[record_id] = entry
            self._entries.move_to_end(record_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
