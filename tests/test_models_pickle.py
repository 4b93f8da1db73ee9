"""Values that cross between processes pickle as their constructor's arguments and come
back equal, every field in its place (`aggregator.models.pickled_by_fields`)."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from aggregator.models import (
    FeedHints,
    Image,
    PageMetadata,
    ParsedFeed,
    Provenance,
    Provider,
    QualityReason,
    RawEntry,
    Record,
    RelatedRecord,
    pickled_by_fields,
)
from aggregator.stories_types import LinkFeatures
from aggregator.worktasks import PageBody, PageOutcome, SourceBatch

WHEN = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
IMAGE = Image("https://img.example/a.jpg", 640, 480, "a")
PROVIDER = Provider("Example News", "example.com")
ENTRY = RawEntry(
    "guid-1",
    "https://example.com/a",
    "Title",
    "Summary",
    WHEN,
    WHEN,
    ("Ann",),
    ("x",),
    (IMAGE,),
    True,
)
PAGE = PageMetadata(
    "https://example.com/a",
    "T",
    "E",
    WHEN,
    (IMAGE,),
    "https://c",
    "https://amp",
    "S",
    "t",
    "b",
    "en",
)
RELATED = RelatedRecord(
    "R", "e", WHEN, "https://r", "https://ra", "https://rc", "a", PROVIDER, 7, (IMAGE,)
)
RECORD = Record(
    title="T",
    web_url="https://example.com/a",
    provider=PROVIDER,
    category="tech",
    excerpt="E",
    published=WHEN,
    amp_web_url="https://amp",
    cdn_amp_web_url="https://cdn",
    type="article",
    quality=61,
    heat=40,
    is_published=True,
    topics=("AI",),
    images=(IMAGE,),
    related=(RELATED,),
    secured="seal",
    provenance=Provenance("src", "https://f", "g", WHEN, "h", True, ("c",)),
    text="body",
    quality_reasons=(QualityReason("title", 10, "has a title"),),
)
VALUES = [
    IMAGE,
    PROVIDER,
    ENTRY,
    FeedHints(60, "hourly", 2, (1, 2), ("Monday",)),
    ParsedFeed("https://f", "rss20", "F", "https://l", (ENTRY,), FeedHints(), "w"),
    PAGE,
    RELATED,
    RECORD,
    LinkFeatures((("quake", 3.0),), (("chile", 1.5),)),
    PageBody("https://example.com/a", b"<html>", {"content-type": "text/html"}, "gzip", 99),
    PageOutcome(PAGE, True, "why"),
    SourceBatch((RECORD,), (LinkFeatures((), ()),)),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_pickle_by_their_fields_and_come_back_equal(value: object) -> None:
    reduced = value.__reduce__()
    assert reduced[0] is type(value)
    assert list(reduced[1]) == [getattr(value, f.name) for f in dataclasses.fields(value)]  # type: ignore[arg-type]
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        assert pickle.loads(pickle.dumps(value, protocol=protocol)) == value


def test_a_dataclass_with_fields_outside_its_constructor_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Partial:
        kept: int
        derived: int = dataclasses.field(init=False, default=0)

    with pytest.raises(TypeError, match="constructor does not take"):
        pickled_by_fields(Partial)
