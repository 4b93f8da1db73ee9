"""What quality rescoring reads of stored records, without the body, topics or related.

`scoring_records` answers `Store.scoring_records`: the tracking layer rescoring a story's
members needs each record's public fields, lead images, provenance and quality reasons,
and nothing that costs a join or a large column.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from aggregator.models import Image, Record
from aggregator.store.bulk import IMAGES, RECORDS
from aggregator.store.chunks import chunked
from aggregator.store.convert import record_from_values

_COLUMNS = [column for column in RECORDS.c if column.name != "text"]


def scoring_records(connection: Connection, record_ids: Iterable[int]) -> dict[int, Record]:
    """id → the stored record with its images but an empty text, topics and related."""
    ids = sorted(set(record_ids))
    images = _images(connection, ids)
    found: dict[int, Record] = {}
    for part in chunked(ids):
        for row in connection.execute(select(*_COLUMNS).where(RECORDS.c.id.in_(part))):
            values = {**row._mapping, "text": ""}
            found[row.id] = record_from_values(values, images.get(row.id, ()))
    return found


def _images(connection: Connection, record_ids: list[int]) -> dict[int, tuple[Image, ...]]:
    columns = IMAGES.c
    grouped: dict[int, list[Image]] = {}
    for part in chunked(record_ids):
        statement = (
            select(columns.record_id, columns.url, columns.width, columns.height, columns.title)
            .where(columns.record_id.in_(part))
            .order_by(columns.record_id, columns.position)
        )
        for record_id, url, width, height, title in connection.execute(statement):
            image = Image(url=url, width=width, height=height, title=title)
            grouped.setdefault(record_id, []).append(image)
    return {record_id: tuple(found) for record_id, found in grouped.items()}
