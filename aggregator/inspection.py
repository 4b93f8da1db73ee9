"""Looking inside the tracking layer: extended exports, `retag` and `explain`.

extended_lines(store, stored)   JSONL with `story` {id, size, providers, firstSeen}
                                and `qualityReasons` added to the seed shape
retag(settings, store)          re-apply the configured topic rules to every record,
                                with its stored feed categories (as at ingest)
explain(settings, store, key)   the quality breakdown, topic hits and story of one record
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from aggregator.dates import format_utc
from aggregator.export.fields import record_to_public
from aggregator.models import QualityReason, Record
from aggregator.quality import score_quality
from aggregator.settings import Settings
from aggregator.store import Store, StoredRecord
from aggregator.store.story_queries import StorySummary
from aggregator.topics import TopicMatch, TopicMatcher, assign_topics

_BATCH = 200


def _batches(items: Iterable[StoredRecord]) -> Iterator[list[StoredRecord]]:
    iterator = iter(items)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def extended_public(record: Record, story: StorySummary | None) -> dict[str, object]:
    """The seed-shaped public dict plus `story` and `qualityReasons`."""
    data: dict[str, object] = dict(record_to_public(record))
    data["story"] = (
        {
            "id": story.id,
            "size": story.size,
            "providers": list(story.providers),
            "firstSeen": format_utc(story.first_seen) if story.first_seen else None,
        }
        if story
        else None
    )
    data["qualityReasons"] = [
        {"name": reason.name, "points": reason.points, "detail": reason.detail}
        for reason in record.quality_reasons
    ]
    return data


def extended_lines(
    store: Store, stored: Iterable[StoredRecord], sealed: Iterable[Record]
) -> Iterator[str]:
    """One extended JSON line per record; `sealed` gives the records with their seals."""
    sealed_iter = iter(sealed)
    for batch in _batches(stored):
        summaries = store.story_summaries(s.story_id for s in batch if s.story_id)
        for item in batch:
            record = next(sealed_iter)
            story = summaries.get(item.story_id) if item.story_id else None
            yield json.dumps(extended_public(record, story), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class RetagSummary:
    """What a retag changed."""

    total: int
    changed: int


def retag(settings: Settings, store: Store) -> RetagSummary:
    """Apply the current topic rules to every stored record, without fetching anything."""
    matcher = TopicMatcher(settings.topics)
    total = changed = 0
    for batch in _batches(store.iter_records()):
        for item in batch:
            total += 1
            topics = assign_topics(matcher, item.record)  # with its stored feed categories
            if topics != item.record.topics:
                store.set_topics(item.id, topics)
                changed += 1
    return RetagSummary(total, changed)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a record has its quality, topics and story."""

    stored: StoredRecord
    topic_matches: tuple[TopicMatch, ...]
    story: StorySummary | None
    reasons: tuple[QualityReason, ...]
    reasons_recomputed: bool


def explain(settings: Settings, store: Store, key: str) -> Explanation | None:
    """Explain the record with id or URL `key`; None when there is no such record."""
    lookup: int | str = int(key) if key.isdigit() else key
    stored = store.get_record(lookup)
    if stored is None:
        return None
    record = stored.record
    matches = TopicMatcher(settings.topics).match(
        title=record.title,
        excerpt=record.excerpt,
        body=record.text,
        categories=record.provenance.categories,
        source=record.provenance.source_name,
    )
    story = None
    if stored.story_id:
        story = store.story_summaries([stored.story_id]).get(stored.story_id)
    reasons, recomputed = record.quality_reasons, False
    if not reasons:
        source = settings.source(record.provenance.source_name)
        weight = source.weight if source else 1.0
        now = datetime.now(UTC)
        reasons, recomputed = score_quality(record, now=now, source_weight=weight).reasons, True
    return Explanation(stored, tuple(matches), story, reasons, recomputed)
