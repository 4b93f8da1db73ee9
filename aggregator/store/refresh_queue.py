"""The refresh queue: records linked into a story whose derived fields wait for a refresh.

    enqueue(connection, {id: linked_at})   in the transaction that writes their stories
    dequeue(connection, ids)               in the transaction that writes their refresh
    queued(connection)                     id → linked_at of every waiting record

A crawl links each batch as it arrives but refreshes heat, related lists and corroborated
quality once, at the end (`Tracker.flush`). The queue is in the store, not only in memory,
so a process killed in between leaves its successor the list of what to finish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, delete, select

from aggregator.store.bulk import in_param
from aggregator.store.chunks import chunked
from aggregator.store.native import dialect_insert
from aggregator.store.source_rows import utc
from aggregator.store.tables import RefreshQueueRow

QUEUE: Table = RefreshQueueRow.__table__  # type: ignore[attr-defined]
_DEQUEUE = delete(QUEUE).where(in_param(QUEUE.c.record_id))


def enqueue(connection: Connection, waiting: Mapping[int, datetime]) -> None:
    """Queue each record id with the time it counts at (already queued: left as is)."""
    if not waiting:
        return
    rows = [
        {"record_id": record_id, "linked_at": at.astimezone(UTC)}
        for record_id, at in sorted(waiting.items())
    ]
    connection.execute(dialect_insert(connection, QUEUE).on_conflict_do_nothing(), rows)


def dequeue(connection: Connection, record_ids: Iterable[int]) -> None:
    """Take the given record ids off the queue (ids not queued are ignored)."""
    for part in chunked(sorted(set(record_ids))):
        connection.execute(_DEQUEUE, {"ids": part})


def queued(connection: Connection) -> dict[int, datetime]:
    """record id → the time it counts at, of every queued record."""
    rows = connection.execute(select(QUEUE.c.record_id, QUEUE.c.linked_at))
    return {int(record_id): utc(at) or at for record_id, at in rows}
