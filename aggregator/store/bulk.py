"""Core executemany writes shared by the batch upsert and the tracking updates.

    update_rows(connection, updates)     ``UPDATE records SET … WHERE id = ?`` for many rows,
                                         one executemany per run of same-shaped updates, in order
    set_secured_by_url(connection, seals)    many records' seals by web_url, one executemany
    delete_children(connection, model, ids)   a child table's rows of many records, chunked
    in_param(column, name)               ``column IN (…)`` over a list given at execute time
    PendingChildren                      images, topics and related snapshots of a batch,
                                         inserted once at the end under the rows' final ids

Nothing here goes through the ORM unit of work: no identity map, no per-row flush.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Connection, Delete, Table, bindparam, delete, insert, update

from aggregator.models import Image, Record, RelatedRecord
from aggregator.store.chunks import chunked
from aggregator.store.convert import RowValues, image_rows, snapshot_rows, topic_rows
from aggregator.store.tables import ImageRow, RecordRow, RelatedRow, TopicRow

RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]
IMAGES: Table = ImageRow.__table__  # type: ignore[attr-defined]
TOPICS: Table = TopicRow.__table__  # type: ignore[attr-defined]
RELATED: Table = RelatedRow.__table__  # type: ignore[attr-defined]


def in_param(column: ColumnElement[Any], name: str = "ids") -> ColumnElement[bool]:
    """``column IN (…)`` over the expanding parameter `name`, whose list is given at execute
    time: a statement built once serves every call. The literal ``column.in_(values)``
    makes SQLAlchemy build an expression of each value and a new statement each call."""
    return column.in_(bindparam(name, expanding=True))


_ROW_ID = "row_id"  # the bound id of `update_rows` (not a column name, so SET leaves it out)


def update_rows(connection: Connection, updates: Sequence[tuple[int, RowValues]]) -> None:
    """Set the given columns of each (row id, columns) in order; consecutive updates of the
    same columns share one executemany."""
    statement = update(RECORDS).where(RECORDS.c.id == bindparam(_ROW_ID))
    for _columns, run in groupby(updates, key=lambda update: sorted(update[1])):
        params = [{_ROW_ID: row_id, **values} for row_id, values in run]
        connection.execute(statement, params)


def set_secured_by_url(connection: Connection, seals: Sequence[tuple[str, str]]) -> None:
    """Store each (web_url, seal) pair in one executemany (updated_at stays as it is)."""
    statement = (
        update(RECORDS)
        .where(RECORDS.c.web_url == bindparam("by_url"))
        .values(secured=bindparam("seal"))
    )
    connection.execute(statement, [{"by_url": url, "seal": seal} for url, seal in seals])


def delete_children(connection: Connection, table: Table, record_ids: Iterable[int]) -> None:
    """Delete the rows of child `table` that belong to `record_ids`."""
    statement = _delete_children_of(table)
    for part in chunked(sorted(set(record_ids))):
        connection.execute(statement, {"ids": part})


@functools.cache
def _delete_children_of(table: Table) -> Delete:
    return delete(table).where(in_param(table.c.record_id))


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` into `table` in one executemany (nothing when there are none)."""
    if rows:
        connection.execute(insert(table), list(rows))


class PendingChildren:
    """Images, topics and related snapshots of a batch, by row id (later puts win)."""

    def __init__(self) -> None:
        self.images: dict[int, tuple[Image, ...]] = {}
        self.topics: dict[int, tuple[str, ...]] = {}
        self.related: dict[int, tuple[RelatedRecord, ...]] = {}

    def put(self, row_id: int, record: Record, *, related: bool) -> None:
        """Make `record`'s children the ones to write for `row_id`; its related snapshots
        only when `related`."""
        self.images[row_id] = record.images
        self.topics[row_id] = record.topics
        if related:
            self.related[row_id] = record.related

    def write(self, connection: Connection, final_ids: Mapping[int, int]) -> None:
        """Insert every pending child row; `final_ids` maps placeholder ids to inserted ones."""

        def final(row_id: int) -> int:
            return final_ids.get(row_id, row_id)

        images = [r for i, v in self.images.items() for r in image_rows(final(i), v)]
        topics = [r for i, v in self.topics.items() for r in topic_rows(final(i), v)]
        related = [r for i, v in self.related.items() for r in snapshot_rows(final(i), v)]
        insert_rows(connection, IMAGES, images)
        insert_rows(connection, TOPICS, topics)
        insert_rows(connection, RELATED, related)
