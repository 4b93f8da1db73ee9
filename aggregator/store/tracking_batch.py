"""Tracking-layer writes for many records in one transaction (see `Store.apply_tracking`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, delete, insert

from aggregator.models import QualityReason
from aggregator.store.convert import reasons_to_json
from aggregator.store.identity import chunked
from aggregator.store.queries import children_by_record, rows_by_id
from aggregator.store.tables import RecordRow, RelatedRow


@dataclass(frozen=True, slots=True)
class QualityUpdate:
    """A new quality score with its reasons and the published flag it implies."""

    score: int
    reasons: tuple[QualityReason, ...]
    is_published: bool


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    """What the tracking layer changes on one record; None fields are left alone."""

    record_id: int
    story_id: str | None = None
    heat: int | None = None
    related: tuple[int, ...] | None = None
    quality: QualityUpdate | None = None


def apply_updates(session: Session, updates: Sequence[TrackingUpdate], now: datetime) -> int:
    """Apply `updates` (unknown ids are skipped); return how many rows changed."""
    rows = rows_by_id(session, (update.record_id for update in updates))
    related_changed = _replace_related(session, rows, updates)
    changed = 0
    for update in updates:
        row = rows.get(update.record_id)
        if row is None:
            continue
        if apply_to_row(row, update) or update.record_id in related_changed:
            row.updated_at = now
            changed += 1
    return changed


def _replace_related(
    session: Session, rows: Mapping[int, RecordRow], updates: Sequence[TrackingUpdate]
) -> set[int]:
    """Replace the related links of every updated record whose list changed, in bulk."""
    wanted = {
        u.record_id: [i for i in dict.fromkeys(u.related) if i != u.record_id]
        for u in updates
        if u.related is not None and u.record_id in rows
    }
    current = children_by_record(session, RelatedRow, wanted)
    stale = [
        record_id
        for record_id, ids in wanted.items()
        if [(e.related_record_id, e.snapshot) for e in current.get(record_id, [])]
        != [(i, None) for i in ids]
    ]
    for part in chunked(stale):
        session.execute(delete(RelatedRow).where(col(RelatedRow.record_id).in_(part)))
    links = [
        {"record_id": record_id, "position": position, "related_record_id": related_id}
        for record_id in stale
        for position, related_id in enumerate(wanted[record_id])
    ]
    if links:
        session.execute(insert(RelatedRow), links)
    return set(stale)


def apply_to_row(row: RecordRow, update: TrackingUpdate) -> bool:
    """Set the story, heat and quality an update carries on `row`; whether it changed."""
    changed = False
    if update.story_id is not None and row.story_id != update.story_id:
        row.story_id, changed = update.story_id, True
    if update.heat is not None and row.heat != update.heat:
        row.heat, changed = update.heat, True
    if update.quality is not None:
        quality = update.quality
        new = (quality.score, reasons_to_json(quality.reasons), quality.is_published)
        if (row.quality, row.quality_reasons, row.is_published) != new:
            row.quality, row.quality_reasons, row.is_published = new
            changed = True
    return changed
