"""The CPU-bound units of a crawl, as pure functions a `WorkPool` worker can run.

    parse_feed_task(content, url, headers)  feed bytes → ParsedFeed             (feeds.py)
    extract_page_task(body, now)            page bytes → PageOutcome            (extract.py)
    build_source_records(work)              entries + pages → scored Records    (records.py,
                                                                                 tracking.py)
    build_source_batch(work)                the same, plus each record's linking features
                                            (stories_prepare), so the linker skips them

Arguments and results are bytes and frozen values (they cross a process boundary); nothing
here touches the network or the store, so the forkserver imports only the parsers, the merge
step and the scorers. The parsers are imported on first use: the crawling process needs
none when its feeds answer 304 or when a pool parses them (the pool preloads them).
`pipeline.py` calls the same functions in-process when the pool has no workers, which is
the reference the fast path is tested against (tests/test_fast_path.py).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from aggregator.content_coding import decode_content
from aggregator.errors import AggregatorError, FetchError
from aggregator.models import PageMetadata, ParsedFeed, RawEntry, Record, pickled_by_fields
from aggregator.records import build_record
from aggregator.settings import Settings, SourceSettings
from aggregator.stories import LinkFeatures
from aggregator.tracking import Tracker, record_features

_TRACKERS_KEPT = 2  # a daemon whose sources change between ticks needs one more than one


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PageBody:
    """A fetched article page, still to be extracted."""

    url: str  # the final URL, after redirects
    content: bytes
    headers: Mapping[str, str]
    content_encoding: str = ""  # `content` is still gzip/deflate: decode it here, under…
    max_bytes: int = 0  # …this cap on the decoded size


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PageOutcome:
    """A page's metadata, or why there is none (`skipped`) and whether a retry may help."""

    page: PageMetadata | None
    retry: bool = False
    skipped: str = ""


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """The settings the topic and quality steps need, pickled once per crawl; workers keep
    the `Tracker` built from them by `key`, so the topic rules compile once per process."""

    key: str
    blob: bytes = field(repr=False)

    @classmethod
    def of(cls, settings: Settings) -> TrackingConfig:
        """The config of `settings` (its effective sources carry the quality weights)."""
        blob = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(hashlib.sha256(blob).hexdigest(), blob)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SourceWork:
    """What `build_source_records` needs for one source's new or changed entries."""

    tracking: TrackingConfig
    source: SourceSettings
    feed_url: str
    entries: tuple[RawEntry, ...]
    pages: Mapping[str, PageMetadata]  # by entry guid
    pending: frozenset[str]  # guids whose page is still to be fetched
    now: datetime  # when the feed was fetched


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SourceBatch:
    """One source's scored records and, in the same order, their linking features."""

    records: tuple[Record, ...]
    features: tuple[LinkFeatures, ...]


def parse_feed_task(content: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    """`feeds.parse_feed` with positional arguments (raises ParseError)."""
    from aggregator.feeds import parse_feed  # a crawl whose feeds all answer 304 needs none

    return parse_feed(content, url=url, headers=headers)


def extract_page_task(body: PageBody, now: datetime) -> PageOutcome:
    """Extract one fetched page; a page that is not HTML is skipped for good, not retried."""
    from aggregator.extract import extract_page  # not needed without pages

    try:
        content = decode_content(body.url, body.content, body.content_encoding, body.max_bytes)
    except FetchError as exc:  # as if the fetch had failed: a truncated body may heal
        return PageOutcome(None, retry=exc.status is None, skipped=str(exc))
    try:
        return PageOutcome(extract_page(content, body.url, headers=body.headers, now=now))
    except AggregatorError as exc:
        return PageOutcome(None, retry=False, skipped=str(exc))


def build_source_records(work: SourceWork) -> tuple[Record, ...]:
    """Merge each entry with its page, fingerprint it, then give it topics and quality."""
    records: list[Record] = []
    for entry in work.entries:
        record = build_record(
            entry,
            work.pages.get(entry.guid),
            work.source,
            feed_url=work.feed_url,
            fetched_at=work.now,
            now=work.now,
        )
        if record is not None:
            provenance = replace(
                record.provenance,
                entry_hash=entry_hash(entry),
                page_pending=entry.guid in work.pending,
            )
            records.append(replace(record, provenance=provenance))
    tracker = tracker_for(work.tracking)
    return tuple(tracker.enrich(records, now=work.now))


def build_source_batch(work: SourceWork) -> SourceBatch:
    """`build_source_records`, plus the linking features of each record: computed here,
    in a worker, they are off the linking thread (`Tracker.after_upsert`)."""
    records = build_source_records(work)
    return SourceBatch(records, tuple(record_features(record) for record in records))


def entry_hash(entry: RawEntry) -> str:
    """A fingerprint of what the feed says about an entry, to notice edits at the source.

    The feed categories count when there are any (they are stored and drive topics); an
    entry without categories keeps the fingerprint it had before they were stored.
    """
    published = entry.published.isoformat() if entry.published else ""
    updated = entry.updated.isoformat() if entry.updated else ""
    parts = [entry.guid, entry.link, entry.title, entry.summary, published, updated]
    if entry.categories:
        parts.append("\x1e".join(entry.categories))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


_trackers: dict[str, Tracker] = {}


def tracker_for(config: TrackingConfig) -> Tracker:
    """The store-less `Tracker` of `config`, built once per process."""
    tracker = _trackers.get(config.key)
    if tracker is None:
        if len(_trackers) >= _TRACKERS_KEPT:
            _trackers.clear()
        settings = pickle.loads(config.blob)  # noqa: S301 - pickled by the crawling process
        tracker = _trackers[config.key] = Tracker(settings, None)
    return tracker
