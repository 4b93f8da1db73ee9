"""Persistence: the only package that imports sqlmodel/SQLAlchemy.

    Store(url)                      open/create the database (SQLite WAL, or PostgreSQL)
      .upsert_records(records)      → UpsertCounts(new, updated, unchanged), one transaction
      .get_record(id | url)         → StoredRecord | None
      .iter_records(filters…)       → StoredRecord… newest first, streamed in pages
      .iter_export_records()        → the published Records, lean, for the export tree
      .known_guids / .find_by_urls  identity look-ups for the crawler and the linker
      .get/save_source_state        → SourceState (conditional GET, health, schedule)
      .set_related/topics/quality/story/heat   small updaters for the tracking layer
      .apply_tracking(updates)      story, heat, related, quality of many records at once
      .scoring_records(ids)         what quality rescoring reads of stored records

Modules: tables (rows), convert (rows ↔ models, content hash), identity (upsert matching),
upsert (batch planning), bulk (Core executemany writes), native (ON CONFLICT inserts),
tracking and tracking_batch (updaters), scoring, queries (bulk loading, paging), export_read
(what the export tree reads), engine (pragmas, transactions).
"""

from typing import TYPE_CHECKING, Any

from aggregator.store.values import SOURCE_STATES, SourceState, StoredRecord, UpsertCounts

if TYPE_CHECKING:
    from aggregator.store.convert import content_hash
    from aggregator.store.store import Store

__all__ = [
    "SOURCE_STATES",
    "SourceState",
    "Store",
    "StoredRecord",
    "UpsertCounts",
    "content_hash",
]


def __getattr__(name: str) -> Any:
    """`Store` and `content_hash` are imported on first use: they load SQLAlchemy and the
    table models (~180 ms), which a crawl of unchanged feeds does without (`store.lazy`)."""
    if name == "Store":
        from aggregator.store.store import Store

        return Store
    if name == "content_hash":
        from aggregator.store.convert import content_hash

        return content_hash
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
