"""Upserting a batch of records in one transaction (see `Store.upsert_records`).

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
  and feed categories of its own (source_name, guid), so the crawler does not refetch its
  page next time and `retag` sees the categories the feed gives now.
* The same article reached under another URL merges field by field (`dedupe.richer`);
  its feed categories are the union of both records' (stored ones first).
* A unique value already held by another row (web_url, or source+guid) is not moved:
  the matched row keeps its old value rather than failing the batch.

How: `IdentityIndex.load` reads every row the batch could match in one query; `BatchPlan`
then walks the records in order entirely in memory, exactly as if each were written before
the next is matched, and collects the writes; `_write` sends them as a few executemany
statements: updates of stored rows (in batch order), child deletes, the new rows (``INSERT
… ON CONFLICT DO NOTHING RETURNING``), their children. Updates go first: a stored row only
takes a URL or guid no other row of the index holds, and a new row's final URL or guid is
one no stored row holds at the end, so neither step can hit a unique key of the other.
When a concurrent transaction stored one of the new rows' keys first (PostgreSQL), the
whole batch is rolled back to its savepoint and planned again against the winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, select
from sqlmodel import Session

from aggregator.dedupe import richer
from aggregator.errors import StorageError
from aggregator.models import Image, Record
from aggregator.store.bulk import (
    IMAGES,
    RELATED,
    TOPICS,
    PendingChildren,
    delete_children,
    update_rows,
)
from aggregator.store.convert import (
    RowValues,
    content_hash,
    new_record_values,
    record_from_values,
    record_values,
)
from aggregator.store.identity import PENDING_ID_BASE, IdentityIndex, is_pending
from aggregator.store.native import insert_new_rows

Outcome = Literal["new", "updated", "unchanged"]
_ATTEMPTS = 5  # plans of one batch before giving up on concurrent writers
_SAME_ARTICLE_ELSEWHERE = 3  # ladder steps that match an article under another URL


def upsert_batch(session: Session, records: Sequence[Record], now: datetime) -> list[Outcome]:
    """Upsert `records` in `session`'s transaction; one outcome per record."""
    connection = session.connection()
    for _attempt in range(_ATTEMPTS):
        savepoint = session.begin_nested()
        plan = BatchPlan(connection, IdentityIndex.load(connection, records), now)
        outcomes = [plan.upsert(record) for record in records]
        if _write(connection, plan):
            savepoint.commit()
            return outcomes
        savepoint.rollback()
    raise StorageError(f"upsert of {len(records)} records kept conflicting with other writers")


def _write(connection: Connection, plan: BatchPlan) -> bool:
    """Send `plan`'s writes; False when another transaction took a new row's key first."""
    update_rows(connection, plan.updates)
    delete_children(connection, IMAGES, plan.stale_children)
    delete_children(connection, TOPICS, plan.stale_children)
    delete_children(connection, RELATED, (i for i, both in plan.stale_children.items() if both))
    inserted = insert_new_rows(connection, plan.new_rows)
    if len(inserted) < len(plan.new_rows):
        return False
    final_ids = {row["id"]: inserted[row["web_url"]] for row in plan.new_rows}
    plan.children.write(connection, final_ids)
    return True


class BatchPlan:
    """The writes that upserting a batch, record by record, amounts to."""

    def __init__(self, connection: Connection, index: IdentityIndex, now: datetime) -> None:
        self._connection = connection
        self._index = index
        self._now = now
        self.new_rows: list[RowValues] = []
        self.updates: list[tuple[int, RowValues]] = []
        self.children = PendingChildren()
        self.stale_children: dict[int, bool] = {}  # stored row id → its related go too

    def upsert(self, record: Record) -> Outcome:
        """Plan the insert or update of `record`, keeping the index current."""
        row, step = self._index.match_rule(record)
        if row is None:
            self._insert(record)
            return "new"
        if step >= _SAME_ARTICLE_ELSEWHERE:
            record = self._richer_than_stored(row, record)
        digest = content_hash(record)
        if row["content_hash"] == digest:
            self._refresh_feed_state(row, record)
            return "unchanged"
        self._update(row, record, digest)
        related = bool(record.related)
        if not is_pending(row["id"]):
            self.stale_children[row["id"]] = self.stale_children.get(row["id"], False) or related
        self.children.put(row["id"], record, related=related)
        return "updated"

    def _insert(self, record: Record) -> None:
        row = new_record_values(record, content_hash(record), self._now)
        row["id"] = PENDING_ID_BASE + len(self.new_rows)
        self.new_rows.append(row)
        self._index.add(row)
        self.children.put(row["id"], record, related=True)

    def _update(self, row: RowValues, record: Record, digest: str) -> None:
        source, guid = record.provenance.source_name, record.provenance.guid
        url_owner = self._index.url_owner(record.web_url)
        guid_owner = self._index.guid_owner(source, guid)
        foreign_guid = row["guid"] is not None and row["source_name"] != source
        values = record_values(
            record,
            digest,
            self._now,
            keep_web_url=url_owner not in (None, row["id"]),
            keep_identity=foreign_guid or guid_owner not in (None, row["id"]),
        )
        self._index.discard(row)
        row.update(values)
        self._index.add(row)
        self._changed(row, values)

    def _refresh_feed_state(self, row: RowValues, record: Record) -> None:
        """Keep the feed-entry fingerprint and categories current even when the public
        fields did not change."""
        provenance = record.provenance
        same_entry = (row["source_name"], row["guid"]) == (provenance.source_name, provenance.guid)
        if not same_entry:
            return
        values: RowValues = {}
        if provenance.entry_hash and row["entry_hash"] != provenance.entry_hash:
            values["entry_hash"] = provenance.entry_hash
        if list(row["categories"] or ()) != list(provenance.categories):
            values["categories"] = list(provenance.categories)
        if values:
            row.update(values)
            self._changed(row, values)

    def _changed(self, row: RowValues, values: RowValues) -> None:
        if not is_pending(row["id"]):  # a row still to insert goes in with its final values
            self.updates.append((row["id"], values))

    def _richer_than_stored(self, row: RowValues, record: Record) -> Record:
        """The same article reached by another URL: keep the stored URL and identity, richer
        fields win, feed categories are the union of both."""
        stored = record_from_values(row, self._images_of(row["id"]))
        merged = richer(stored, record)
        categories = merged.provenance.categories
        provenance = replace(stored.provenance, categories=categories)
        return replace(merged, web_url=row["web_url"], provenance=provenance)

    def _images_of(self, row_id: int) -> tuple[Image, ...]:
        """The images `row_id` has as of this point of the batch."""
        if row_id in self.children.images:
            return self.children.images[row_id]
        statement = (
            select(IMAGES.c.url, IMAGES.c.width, IMAGES.c.height, IMAGES.c.title)
            .where(IMAGES.c.record_id == row_id)
            .order_by(IMAGES.c.position)
        )
        rows = self._connection.execute(statement)
        return tuple(Image(url=url, width=w, height=h, title=title) for url, w, h, title in rows)
