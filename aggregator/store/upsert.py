"""Upserting one record inside a batch transaction (see `Store.upsert_records`).

Policy, kept simple on purpose:

* A matched row is rewritten only when the content hash of the incoming record's public
  fields differs from the stored one; then the incoming record wins for every public field
  (including quality, heat, is_published and topics) and for its provenance and text.
* Images and topics are replaced; related entries only when the incoming record carries
  some (imported snapshots). Computed related links are set with `Store.set_related`.
* `story_id` and `created_at` are never touched by an upsert.
* The first source that stored an article keeps its (source_name, guid) when another
  source later matches it by URL; the same source with a new guid adopts the new guid.
* An unchanged record still refreshes the stored feed-entry fingerprint (`entry_hash`)
  of its own (source_name, guid), so the crawler does not refetch its page next time.
* A unique value already held by another row (web_url, or source+guid) is not moved:
  the matched row keeps its old value rather than failing the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session, col, delete, insert, select

from aggregator.dedupe import richer
from aggregator.errors import StorageError
from aggregator.models import Record
from aggregator.store.convert import (
    apply_record,
    content_hash,
    image_rows,
    new_record_row,
    snapshot_rows,
    stored_from_row,
    topic_rows,
)
from aggregator.store.identity import IdentityIndex
from aggregator.store.native import insert_record_row
from aggregator.store.tables import ImageRow, RecordRow, RelatedRow, TopicRow

Outcome = Literal["new", "updated", "unchanged"]
_Rows = dict[int, list[dict[str, Any]]]


class PendingChildren:
    """Images, topics and related rows of a batch, bulk-inserted once at the end."""

    def __init__(self) -> None:
        self.images: _Rows = {}
        self.topics: _Rows = {}
        self.related: _Rows = {}

    def put(self, record_id: int, record: Record, *, related: bool) -> None:
        """Make `record`'s children the ones to write for `record_id` (later calls win)."""
        self.images[record_id] = image_rows(record_id, record.images)
        self.topics[record_id] = topic_rows(record_id, record.topics)
        if related:
            self.related[record_id] = snapshot_rows(record_id, record.related)

    def write(self, session: Session) -> None:
        """Insert every pending child row (executemany per table)."""
        tables: list[tuple[Any, _Rows]] = [
            (ImageRow, self.images),
            (TopicRow, self.topics),
            (RelatedRow, self.related),
        ]
        for model, pending in tables:
            rows = [row for rows in pending.values() for row in rows]
            if rows:
                session.execute(insert(model), rows)


def upsert_batch(session: Session, records: Sequence[Record], now: datetime) -> list[Outcome]:
    """Upsert `records` in `session`'s transaction; one outcome per record."""
    index = IdentityIndex.load(session, records)
    children = PendingChildren()
    outcomes = [upsert_one(session, index, children, record, now) for record in records]
    children.write(session)
    return outcomes


def upsert_one(
    session: Session,
    index: IdentityIndex,
    children: PendingChildren,
    record: Record,
    now: datetime,
) -> Outcome:
    """Insert or update `record`, keeping `index` current; return what happened."""
    row, step = index.match_rule(record)
    if row is None:
        row, step = _insert_or_match(session, index, children, record, now)
        if row is None:
            return "new"
    if step >= _SAME_ARTICLE_ELSEWHERE:
        record = _richer_than_stored(session, row, record)
    digest = content_hash(record)
    if row.content_hash == digest:
        _refresh_entry_hash(row, record)
        return "unchanged"
    _update(session, index, row, record, digest, now)
    related = bool(record.related)
    _delete_children(session, _id(row), related=related)
    children.put(_id(row), record, related=related)
    return "updated"


def _insert_or_match(
    session: Session,
    index: IdentityIndex,
    children: PendingChildren,
    record: Record,
    now: datetime,
) -> tuple[RecordRow | None, int]:
    """Insert `record` as a new row and return (None, 0); when a concurrent transaction
    stored one of its unique keys first (native ON CONFLICT), return that row and its step."""
    row = new_record_row(record, content_hash(record), now)
    if insert_record_row(session, row):
        index.add(row)
        children.put(_id(row), record, related=True)
        return None, 0
    for stored in IdentityIndex.load(session, [record]).rows.values():
        index.add(stored)
    matched, step = index.match_rule(record)
    if matched is None:
        raise StorageError(f"upsert of {record.web_url!r} conflicted with an unreadable row")
    return matched, step


def _update(
    session: Session,
    index: IdentityIndex,
    row: RecordRow,
    record: Record,
    digest: str,
    now: datetime,
) -> None:
    source, guid = record.provenance.source_name, record.provenance.guid
    url_owner = index.url_owner(record.web_url)
    guid_owner = index.guid_owner(source, guid)
    foreign_guid = row.guid is not None and row.source_name != source
    index.discard(row)
    apply_record(
        row,
        record,
        digest,
        now,
        keep_web_url=url_owner not in (None, row.id),
        keep_identity=foreign_guid or guid_owner not in (None, row.id),
    )
    index.add(row)
    session.flush()


_SAME_ARTICLE_ELSEWHERE = 3  # ladder steps that match an article under another URL


def _richer_than_stored(session: Session, row: RecordRow, record: Record) -> Record:
    """The same article reached by another URL: keep the stored URL, richer fields win."""
    images = session.exec(
        select(ImageRow).where(col(ImageRow.record_id) == row.id).order_by(col(ImageRow.position))
    ).all()
    stored = stored_from_row(row, images, [], []).record
    merged = richer(stored, record)
    return replace(merged, web_url=row.web_url, provenance=stored.provenance)


def _refresh_entry_hash(row: RecordRow, record: Record) -> None:
    """Keep the feed-entry fingerprint current even when the public fields did not change."""
    provenance = record.provenance
    same_entry = (row.source_name, row.guid) == (provenance.source_name, provenance.guid)
    if same_entry and provenance.entry_hash and row.entry_hash != provenance.entry_hash:
        row.entry_hash = provenance.entry_hash


def _delete_children(session: Session, record_id: int, *, related: bool) -> None:
    """Delete the stored children of a record (those of earlier transactions)."""
    models: list[Any] = [ImageRow, TopicRow, RelatedRow] if related else [ImageRow, TopicRow]
    for model in models:
        statement = delete(model).where(col(model.record_id) == record_id)
        session.exec(statement.execution_options(synchronize_session=False))


def _id(row: RecordRow) -> int:
    assert row.id is not None
    return row.id
