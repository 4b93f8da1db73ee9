"""The values that pass between pipeline steps. They are frozen and library-free.

Database rows live in `aggregator.store`; these are what steps produce and consume:

    FetchResult → ParsedFeed(RawEntry…) → PageMetadata → Record → (store, export)

`Record` carries the public fields of the seed record shape (see `docs/record-shape.md`)
plus the private provenance that the seal protects and the text used for linking.

The ones that cross between processes are `pickled_by_fields`: a crawl pickles tens of
thousands of them between the crawling process, the parse workers and the linker.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

_T = TypeVar("_T")


def pickled_by_fields(cls: type[_T]) -> type[_T]:
    """Pickle instances of the frozen dataclass `cls` as its constructor's arguments.

    By default a slotted dataclass pickles a list of its values and restores it through
    dataclasses' Python-level `__setstate__`, which looks its fields up again for every
    object: measured on 3,000 stored records, pickling took 160 us and unpickling 187 us a
    record; as constructor arguments, 54 and 137 us."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if not all(f.init for f in dataclasses.fields(cls)):  # type: ignore[arg-type]
        raise TypeError(f"{cls.__name__} has fields its constructor does not take")
    values: Callable[[Any], Any] = operator.attrgetter(*names)
    if len(names) == 1:
        values = _one_tuple(values)

    def reduce(self: Any) -> tuple[type[_T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = reduce  # type: ignore[method-assign]
    return cls


def _one_tuple(get: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    return lambda obj: (get(obj),)


# Larger is a typo or a trap, and would not fit the store's 64-bit integers: a width of
# 10**25 in one media:content failed the upsert of its whole feed.
MAX_IMAGE_SIDE = 100_000


def image_side(number: int) -> int | None:
    """`number` as an image's width or height: None unless 1 to `MAX_IMAGE_SIDE` pixels."""
    return number if 0 < number <= MAX_IMAGE_SIDE else None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Image:
    """A lead image; width/height are None when unknown."""

    url: str
    width: int | None = None
    height: int | None = None
    title: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Provider:
    """The outlet that published a record."""

    name: str
    domain: str


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one HTTP GET produced. A 304 is a result with `not_modified=True` and no body."""

    url: str
    final_url: str
    status: int
    content: bytes
    headers: Mapping[str, str]
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    elapsed_seconds: float = 0.0
    permanent_redirect: bool = False
    content_encoding: str = ""  # "gzip"/"deflate": `content` is still compressed (see fetch)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RawEntry:
    """One feed entry, converted from the feed library's types at once."""

    guid: str
    link: str
    title: str
    summary: str
    published: datetime | None = None
    updated: datetime | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    images: tuple[Image, ...] = ()
    summary_truncated: bool = False


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class FeedHints:
    """Polling hints a feed carries about itself (used by the scheduler)."""

    ttl_minutes: int | None = None
    update_period: str | None = None
    update_frequency: int | None = None
    skip_hours: tuple[int, ...] = ()
    skip_days: tuple[str, ...] = ()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed RSS/Atom/RDF/JSON feed."""

    url: str
    format: str
    title: str
    link: str
    entries: tuple[RawEntry, ...]
    hints: FeedHints = field(default_factory=FeedHints)
    warning: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PageMetadata:
    """What extraction found on one article page; None where a chain found nothing."""

    url: str
    title: str | None = None
    excerpt: str | None = None
    published: datetime | None = None
    images: tuple[Image, ...] = ()
    canonical_url: str | None = None
    amp_url: str | None = None
    site_name: str | None = None
    type: str | None = None
    text: str = ""
    lang: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class QualityReason:
    """One part of a quality score: a name, the points it gave, and why."""

    name: str
    points: int
    detail: str


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record came from. Sealed into `secured`, never exported in clear.

    `categories` are the feed entry's own categories (tags), kept so that topic rules
    mapping categories apply the same way at ingest and on a later `retag`; they are
    internal and never part of the exported record.
    """

    source_name: str = ""
    feed_url: str = ""
    guid: str = ""
    fetched_at: datetime | None = None
    entry_hash: str = ""
    page_pending: bool = False
    categories: tuple[str, ...] = ()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RelatedRecord:
    """A related record as nested in another record (no `related`, no `secured`)."""

    title: str
    excerpt: str
    published: datetime | None
    web_url: str
    amp_web_url: str
    cdn_amp_web_url: str
    type: str
    provider: Provider
    quality: int
    images: tuple[Image, ...] = ()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Record:
    """One story as kept and exported: the seed's public fields plus private context."""

    title: str
    web_url: str
    provider: Provider
    category: str = "news"
    excerpt: str = ""
    published: datetime | None = None
    amp_web_url: str = ""
    cdn_amp_web_url: str = ""
    type: str = "article"
    quality: int = 0
    heat: int = -1
    is_published: bool = False
    topics: tuple[str, ...] = ()
    images: tuple[Image, ...] = ()
    related: tuple[RelatedRecord, ...] = ()
    secured: str = ""
    provenance: Provenance = field(default_factory=Provenance)
    text: str = ""
    quality_reasons: tuple[QualityReason, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceReport:
    """The outcome of crawling one source: counts, and an error message when it failed."""

    source: str
    status: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_modified: bool = False
    pages_fetched: int = 0
    page_errors: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when the source itself could not be crawled."""
        return self.error is not None
