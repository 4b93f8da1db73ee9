"""Conversions between the frozen model values and database rows, and the content hash.

Upsert policy (see `record_values`): the incoming record wins for every public field and
for its provenance; `story_id`, `created_at` and computed related links are kept. The feed
categories go with the public fields (they are what the stored topics were computed from),
even when the row keeps another source's identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from aggregator.dedupe import text_fingerprint, title_key
from aggregator.models import Image, Provenance, Provider, QualityReason, Record, RelatedRecord
from aggregator.store.source_rows import SOURCE_COLUMNS, iso_utc, source_from_columns, utc
from aggregator.store.tables import ImageRow, RecordRow, SourceRow, TopicRow
from aggregator.store.values import SourceState, StoredRecord


def _image_dict(image: Image) -> dict[str, Any]:
    return {"url": image.url, "width": image.width, "height": image.height, "title": image.title}


def snapshot_of(entry: RelatedRecord) -> dict[str, Any]:
    """A JSON-ready snapshot of an imported related entry."""
    return {
        "title": entry.title,
        "excerpt": entry.excerpt,
        "published": iso_utc(entry.published),
        "web_url": entry.web_url,
        "amp_web_url": entry.amp_web_url,
        "cdn_amp_web_url": entry.cdn_amp_web_url,
        "type": entry.type,
        "provider": {"name": entry.provider.name, "domain": entry.provider.domain},
        "quality": entry.quality,
        "images": [_image_dict(image) for image in entry.images],
    }


def related_from_snapshot(data: dict[str, Any]) -> RelatedRecord:
    """Rebuild an imported related entry from its snapshot."""
    published = data.get("published")
    return RelatedRecord(
        title=data["title"],
        excerpt=data["excerpt"],
        published=datetime.fromisoformat(published) if published else None,
        web_url=data["web_url"],
        amp_web_url=data["amp_web_url"],
        cdn_amp_web_url=data["cdn_amp_web_url"],
        type=data["type"],
        provider=Provider(**data["provider"]),
        quality=data["quality"],
        images=tuple(Image(**image) for image in data["images"]),
    )


def related_from_row(row: RecordRow, images: Sequence[ImageRow]) -> RelatedRecord:
    """Render a stored record as a related entry, from its current row."""
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
        images=images_from_rows(images),
    )


def content_hash(record: Record) -> str:
    """sha256 (hex) of the public fields of `record`: what a reader of the export sees."""
    public = {
        "category": record.category,
        "title": record.title,
        "excerpt": record.excerpt,
        "published": iso_utc(record.published),
        "web_url": record.web_url,
        "amp_web_url": record.amp_web_url,
        "cdn_amp_web_url": record.cdn_amp_web_url,
        "type": record.type,
        "quality": record.quality,
        "heat": record.heat,
        "is_published": record.is_published,
        "provider": {"name": record.provider.name, "domain": record.provider.domain},
        "topics": list(record.topics),
        "images": [_image_dict(image) for image in record.images],
        "related": [snapshot_of(entry) for entry in record.related],
    }
    encoded = json.dumps(public, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


RowValues = dict[str, Any]
"""Column name → value of one ``records`` row, as the bulk upsert keeps it in memory."""


def new_record_values(record: Record, digest: str, now: datetime) -> RowValues:
    """The column values of a fresh row for `record` (no id yet)."""
    values: RowValues = {"created_at": now, "story_id": None, "page_attempts": 0}
    values.update(record_values(record, digest, now))
    return values


def record_values(
    record: Record,
    digest: str,
    now: datetime,
    *,
    keep_web_url: bool = False,
    keep_identity: bool = False,
) -> RowValues:
    """The columns an upsert of `record` writes: the incoming record wins for public fields
    and provenance.

    `keep_web_url` leaves out web_url (another row owns the incoming one); `keep_identity`
    leaves out source_name, guid, feed_url, entry_hash and page_pending (the feed
    categories are written either way: they go with the public fields).
    """
    values: RowValues = {} if keep_web_url else {"web_url": record.web_url}
    if not keep_identity:
        provenance = record.provenance
        values["source_name"] = provenance.source_name
        values["guid"] = provenance.guid or None
        values["feed_url"] = provenance.feed_url
        values["entry_hash"] = provenance.entry_hash
        values["page_pending"] = provenance.page_pending
    values.update(
        categories=list(record.provenance.categories),
        amp_web_url=record.amp_web_url,
        cdn_amp_web_url=record.cdn_amp_web_url,
        category=record.category,
        title=record.title,
        title_key=title_key(record.title),
        text_hash=text_fingerprint(record.title, record.excerpt, record.text),
        excerpt=record.excerpt,
        published_at=utc(record.published),
        type=record.type,
        quality=record.quality,
        heat=record.heat,
        is_published=record.is_published,
        provider_name=record.provider.name,
        provider_domain=record.provider.domain,
        secured=record.secured,
        fetched_at=utc(record.provenance.fetched_at),
        text=record.text,
        quality_reasons=reasons_to_json(record.quality_reasons),
        content_hash=digest,
        updated_at=now,
    )
    return values


def reasons_to_json(reasons: Iterable[QualityReason]) -> list[dict[str, Any]]:
    """Quality reasons as a JSON list of {name, points, detail}."""
    return [{"name": r.name, "points": r.points, "detail": r.detail} for r in reasons]


def image_rows(record_id: int, images: Iterable[Image]) -> list[dict[str, Any]]:
    """Column values of a record's image rows, in order (for a bulk insert)."""
    return [
        {"record_id": record_id, "position": position, **_image_dict(image)}
        for position, image in enumerate(images)
    ]


def topic_rows(record_id: int, topics: Iterable[str]) -> list[dict[str, Any]]:
    """Column values of a record's topic rows, best first (for a bulk insert)."""
    return [
        {"record_id": record_id, "position": position, "topic": topic}
        for position, topic in enumerate(topics)
    ]


def snapshot_rows(record_id: int, related: Iterable[RelatedRecord]) -> list[dict[str, Any]]:
    """Column values of imported related entries, stored as snapshots (for a bulk insert)."""
    return [
        {
            "record_id": record_id,
            "position": position,
            "related_record_id": None,
            "snapshot": snapshot_of(entry),
        }
        for position, entry in enumerate(related)
    ]


def images_from_rows(rows: Iterable[ImageRow]) -> tuple[Image, ...]:
    """Image values from rows (callers pass them in position order)."""
    return tuple(Image(url=r.url, width=r.width, height=r.height, title=r.title) for r in rows)


def _provenance(row: Any, categories: tuple[str, ...]) -> Provenance:
    return Provenance(
        source_name=row.source_name,
        feed_url=row.feed_url,
        guid=row.guid or "",
        fetched_at=row.fetched_at,
        entry_hash=row.entry_hash,
        page_pending=row.page_pending,
        categories=categories,
    )


def record_from_row(
    row: Any,
    *,
    topics: tuple[str, ...],
    images: tuple[Image, ...],
    related: tuple[RelatedRecord, ...],
    private: bool = True,
) -> Record:
    """The Record `row` holds (an ORM `RecordRow`, or a Core row with its column names)
    with its loaded children. Without `private`, the text, quality reasons and feed
    categories are left empty, and those columns need not have been read."""
    return Record(
        title=row.title,
        web_url=row.web_url,
        provider=Provider(name=row.provider_name, domain=row.provider_domain),
        category=row.category,
        excerpt=row.excerpt,
        published=row.published_at,
        amp_web_url=row.amp_web_url,
        cdn_amp_web_url=row.cdn_amp_web_url,
        type=row.type,
        quality=row.quality,
        heat=row.heat,
        is_published=row.is_published,
        topics=topics,
        images=images,
        related=related,
        secured=row.secured,
        provenance=_provenance(row, tuple(row.categories or ()) if private else ()),
        text=row.text if private else "",
        quality_reasons=(
            tuple(QualityReason(**reason) for reason in row.quality_reasons) if private else ()
        ),
    )


def record_from_values(values: Mapping[str, Any], images: Sequence[Image]) -> Record:
    """The Record a row holds, from its column values and its images (no topics or related)."""
    return Record(
        title=values["title"],
        web_url=values["web_url"],
        provider=Provider(name=values["provider_name"], domain=values["provider_domain"]),
        category=values["category"],
        excerpt=values["excerpt"],
        published=utc(values["published_at"]),
        amp_web_url=values["amp_web_url"],
        cdn_amp_web_url=values["cdn_amp_web_url"],
        type=values["type"],
        quality=values["quality"],
        heat=values["heat"],
        is_published=values["is_published"],
        images=tuple(images),
        secured=values["secured"],
        provenance=Provenance(
            source_name=values["source_name"],
            feed_url=values["feed_url"],
            guid=values["guid"] or "",
            fetched_at=utc(values["fetched_at"]),
            entry_hash=values["entry_hash"],
            page_pending=values["page_pending"],
            categories=tuple(values["categories"] or ()),
        ),
        text=values["text"],
        quality_reasons=tuple(QualityReason(**reason) for reason in values["quality_reasons"]),
    )


def stored_from_row(
    row: RecordRow,
    images: Sequence[ImageRow],
    topics: Sequence[TopicRow],
    related: Sequence[RelatedRecord],
) -> StoredRecord:
    """Assemble the StoredRecord for `row` from its already-loaded children."""
    assert row.id is not None
    record = record_from_row(
        row,
        topics=tuple(t.topic for t in topics),
        images=images_from_rows(images),
        related=tuple(related),
    )
    return StoredRecord(
        id=row.id,
        record=record,
        story_id=row.story_id,
        content_hash=row.content_hash,
        updated_at=row.updated_at,
    )


def source_from_row(row: SourceRow | Row[Any]) -> SourceState:
    """The SourceState held in a sources row (an ORM object or a core row)."""
    return source_from_columns({name: getattr(row, name) for name in SOURCE_COLUMNS})
