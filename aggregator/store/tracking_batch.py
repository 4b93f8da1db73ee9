"""Tracking-layer writes for many records in one transaction (see `Store.apply_tracking`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlmodel import Session

from aggregator.store.bulk import (
    RECORDS,
    RELATED,
    delete_children,
    in_param,
    insert_rows,
    update_rows,
)
from aggregator.store.chunks import chunked
from aggregator.store.convert import RowValues, reasons_to_json
from aggregator.store.tables import RecordRow
from aggregator.store.values import QualityUpdate as QualityUpdate
from aggregator.store.values import TrackingUpdate as TrackingUpdate

_TRACKED = ("story_id", "heat", "quality", "quality_reasons", "is_published")


def apply_updates(
    session: Session,
    updates: Sequence[TrackingUpdate],
    now: datetime,
    *,
    link_seq: int | None = None,
) -> int:
    """Apply `updates` (unknown ids are skipped); return how many rows changed.

    One read of the tracked columns, one delete and one insert for the related lists that
    changed, and one executemany per kind of update (the columns it carries) of the rows
    that changed. A row whose story id changes is stamped with `link_seq` when given.
    """
    connection = session.connection()
    rows = _tracked_rows(connection, {update.record_id for update in updates})
    changed: dict[int, RowValues] = {
        record_id: {} for record_id in _replace_related(connection, rows, updates)
    }
    for update in updates:
        row = rows.get(update.record_id)
        if row is None:
            continue
        carried = tracked_values(update)
        if link_seq is not None and "story_id" in carried and row["story_id"] != update.story_id:
            carried["link_seq"] = link_seq
        if update.record_id in changed or _differs(row, carried):
            changed.setdefault(update.record_id, {}).update(carried)
        row.update(carried)
    writes = [(record_id, {**values, "updated_at": now}) for record_id, values in changed.items()]
    update_rows(connection, sorted(writes, key=lambda write: sorted(write[1])))
    return len(writes)


_TRACKED_ROWS = select(RECORDS.c.id, *(RECORDS.c[name] for name in _TRACKED)).where(
    in_param(RECORDS.c.id)
)
_RELATED_ENTRIES = (
    select(RELATED.c.record_id, RELATED.c.related_record_id, RELATED.c.snapshot.is_not(None))
    .where(in_param(RELATED.c.record_id))
    .order_by(RELATED.c.record_id, RELATED.c.position)
)


def _tracked_rows(connection: Connection, record_ids: Iterable[int]) -> dict[int, RowValues]:
    """The tracked columns of each stored record among `record_ids`."""
    found: dict[int, RowValues] = {}
    for part in chunked(sorted(record_ids)):
        for row in connection.execute(_TRACKED_ROWS, {"ids": part}):
            values = dict(row._mapping)
            found[values.pop("id")] = values
    return found


def _replace_related(
    connection: Connection, rows: Mapping[int, RowValues], updates: Sequence[TrackingUpdate]
) -> set[int]:
    """Replace the related links of every updated record whose list changed, in bulk."""
    wanted = {
        u.record_id: [i for i in dict.fromkeys(u.related) if i != u.record_id]
        for u in updates
        if u.related is not None and u.record_id in rows
    }
    current = _related_entries(connection, wanted)
    stale = [
        record_id
        for record_id, ids in wanted.items()
        if current.get(record_id, []) != [(i, False) for i in ids]
    ]
    delete_children(connection, RELATED, stale)
    links = [
        {"record_id": record_id, "position": position, "related_record_id": related_id}
        for record_id in stale
        for position, related_id in enumerate(wanted[record_id])
    ]
    insert_rows(connection, RELATED, links)
    return set(stale)


def _related_entries(
    connection: Connection, record_ids: Iterable[int]
) -> dict[int, list[tuple[int | None, bool]]]:
    """(linked record id, has a snapshot) of each related entry of `record_ids`, in order."""
    grouped: dict[int, list[tuple[int | None, bool]]] = {}
    for part in chunked(sorted(set(record_ids))):
        for record_id, related_id, snapshot in connection.execute(_RELATED_ENTRIES, {"ids": part}):
            grouped.setdefault(record_id, []).append((related_id, bool(snapshot)))
    return grouped


def tracked_values(update: TrackingUpdate) -> RowValues:
    """The tracked columns `update` sets (its None fields are left out)."""
    wanted: RowValues = {}
    if update.story_id is not None:
        wanted["story_id"] = update.story_id
    if update.heat is not None:
        wanted["heat"] = update.heat
    if update.quality is not None:
        quality = update.quality
        wanted["quality"] = quality.score
        wanted["quality_reasons"] = reasons_to_json(quality.reasons)
        wanted["is_published"] = quality.is_published
    return wanted


def _differs(current: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    return any(current.get(name) != value for name, value in values.items())


def apply_to_row(row: RecordRow, update: TrackingUpdate) -> bool:
    """Set the story, heat and quality an update carries on `row`; whether it changed."""
    values = tracked_values(update)
    changes = {name: value for name, value in values.items() if getattr(row, name) != value}
    for name, value in changes.items():
        setattr(row, name, value)
    return bool(changes)
