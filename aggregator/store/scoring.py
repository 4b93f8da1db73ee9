"""What quality rescoring reads of stored records, without the body, topics or related.

`scoring_records` answers `Store.scoring_records`: the tracking layer rescoring a story's
members needs each record's public fields, lead images, provenance and quality reasons,
and nothing that costs a join or a large column.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from aggregator.models import Image, Record
from aggregator.store.bulk import IMAGES, RECORDS, in_param
from aggregator.store.chunks import chunked
from aggregator.store.convert import record_from_values

_COLUMNS = [column for column in RECORDS.c if column.name != "text"]
_SCORED = select(*_COLUMNS).where(in_param(RECORDS.c.id))
_IMAGES = (
    select(IMAGES.c.record_id, IMAGES.c.url, IMAGES.c.width, IMAGES.c.height, IMAGES.c.title)
    .where(in_param(IMAGES.c.record_id))
    .order_by(IMAGES.c.record_id, IMAGES.c.position)
)


def scoring_records(connection: Connection, record_ids: Iterable[int]) -> dict[int, Record]:
    """id → the stored record with its images but an empty text, topics and related."""
    ids = sorted(set(record_ids))
    images = _images(connection, ids)
    found: dict[int, Record] = {}
    for part in chunked(ids):
        for row in connection.execute(_SCORED, {"ids": part}):
            values = {**row._mapping, "text": ""}
            found[row.id] = record_from_values(values, images.get(row.id, ()))
    return found


def _images(connection: Connection, record_ids: list[int]) -> dict[int, tuple[Image, ...]]:
    grouped: dict[int, list[Image]] = {}
    for part in chunked(record_ids):
        for record_id, url, width, height, title in connection.execute(_IMAGES, {"ids": part}):
            image = Image(url=url, width=width, height=height, title=title)
            grouped.setdefault(record_id, []).append(image)
    return {record_id: tuple(found) for record_id, found in grouped.items()}
