"""Linking features computed in a crawl worker link exactly like those computed in-process.

A crawl computes each record's linking features (terms, entities, the slug title of an item
without text) in its worker processes (`worktasks.build_source_batch`) and hands them to
`Tracker.after_upsert`; the story index uses them instead of computing them itself.

    worker = in-process   the features pickled back from a worker are byte for byte those
                          computed here, and those the index computes from the item itself
    same stories          a crawl with 2 workers, one with `parse_workers: 0`, and one whose
                          features are dropped before linking (the index computes them, as
                          before this change) store the same story ids, heat and related

The crawls take one source at a time, in order, so that linking order (and with it every
story id) is the same on every run; a concurrent crawl links sources as they finish.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.models import Record
from aggregator.pipeline import WORKER_MODULES, CrawlOptions, crawl
from aggregator.settings import Settings, SourceSettings, parse_settings
from aggregator.store import Store
from aggregator.stories import LinkFeatures, LinkItem, StoryIndex
from aggregator.stories_prepare import features_of, link_features
from aggregator.tracking import Tracker, record_features
from aggregator.workpool import WorkPool
from aggregator.worktasks import (
    PageBody,
    SourceBatch,
    SourceWork,
    TrackingConfig,
    build_source_batch,
    extract_page_task,
    parse_feed_task,
)
from tests.loopback import free_port, generate_corpus, serve_corpus

NOW = datetime(2025, 6, 8, tzinfo=UTC)  # the end of the generated corpus
FEEDS, ITEMS = 8, 6
Row = tuple[str, str | None, int, tuple[str, ...]]

TEXTS = [  # (title, excerpt, text, web_url): the cases `link_features` branches on
    ("", "", "", "https://a.test/news/rihanna-cousin-shot-dead-barbados/"),
    ("", "", "", "https://a.test/"),
    ("North Korea Fires Missile", "Pyongyang launched it on Monday.", "", "https://b.test/1"),
    ("Strike", "", "Unite said 480MW and £52m… “Nobody” knew. " * 60, "https://c.test/2"),
    ("Überraschung in München", "Die Bahn’s Chef sagt: $1.2bn", "Die Bahn’s Chef", "https://d/3"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    port = free_port("127.0.0.2")
    root = generate_corpus(
        tmp_path_factory.mktemp("corpus") / "web", feeds=FEEDS, items=ITEMS, port=port
    )
    with serve_corpus(root, port):
        yield root, port


def local_path(root: Path, url: str) -> Path:
    return root / url.split("/", 3)[3]


def source_works(root: Path) -> list[SourceWork]:
    """Each feed of the corpus with its pages, parsed and extracted from disk."""
    settings = parse_settings({})
    works = []
    for index, url in enumerate((root / "feeds.txt").read_text().split()):
        feed = parse_feed_task(local_path(root, url).read_bytes(), url, {})
        pages = {}
        for entry in feed.entries:
            body = PageBody(entry.link, local_path(root, entry.link).read_bytes(), {})
            page = extract_page_task(body, NOW).page
            if page is not None:
                pages[entry.guid] = page
        source = SourceSettings(name=f"outlet {index}", url=url)
        tracking = TrackingConfig.of(settings.model_copy(update={"sources": (source,)}))
        works.append(SourceWork(tracking, source, url, feed.entries, pages, frozenset(), NOW))
    return works


async def on_pool(pool: WorkPool, works: Sequence[SourceWork]) -> list[SourceBatch]:
    return list(await asyncio.gather(*(pool.run(build_source_batch, w) for w in works)))


async def texts_on_pool(pool: WorkPool) -> list[LinkFeatures]:
    return list(await asyncio.gather(*(pool.run(link_features, *args) for args in TEXTS)))


def test_features_from_a_worker_are_byte_for_byte_those_computed_here(
    corpus: tuple[Path, int],
) -> None:
    works = source_works(corpus[0])
    with WorkPool(2, preload=WORKER_MODULES) as pool:
        fast = asyncio.run(on_pool(pool, works))
        fast_texts = asyncio.run(texts_on_pool(pool))
    plain = [build_source_batch(work) for work in works]
    assert sum(len(batch.records) for batch in plain) == FEEDS * ITEMS
    assert fast == plain
    for got, args in zip(fast_texts, TEXTS, strict=True):
        assert pickle.dumps(got) == pickle.dumps(link_features(*args))
    for fast_batch, plain_batch in zip(fast, plain, strict=True):
        pairs = zip(fast_batch.features, plain_batch.features, fast_batch.records, strict=True)
        for got, want, record in pairs:
            assert got.terms and got.entities
            assert pickle.dumps(got) == pickle.dumps(want) == pickle.dumps(reference(record))


def reference(record: Record) -> LinkFeatures:
    """What the index computes for a record handed to it without features."""
    item = LinkItem(1, "p", record.web_url, None, record.title, record.excerpt, record.text)
    return features_of(item)


def test_the_slug_stands_in_for_a_missing_title() -> None:
    features = link_features(*TEXTS[0])
    assert {"rihanna", "cousin", "shot", "dead"} <= dict(features.terms).keys()
    assert link_features(*TEXTS[1]) == LinkFeatures((), ())


def test_an_index_given_features_links_as_one_computing_them() -> None:
    items = [LinkItem(i, f"p{i}.test", url, NOW, *text) for i, (*text, url) in enumerate(TEXTS)]
    given = [
        LinkItem(i.key, i.provider, i.web_url, NOW, "", features=features_of(i)) for i in items
    ]
    plain, fast = StoryIndex(warmup_docs=0), StoryIndex(warmup_docs=0)
    for item, with_features in zip(items, given, strict=True):
        assert plain.add(item, now=NOW) == fast.add(with_features, now=NOW)
        assert plain.entities(item.key) == fast.entities(item.key)
    assert [plain.related(i.key) for i in items] == [fast.related(i.key) for i in items]


# --- end to end: the stories of a crawl -------------------------------------------------


def settings_for(tmp_path: Path, name: str, root: Path, workers: int) -> Settings:
    feeds = (root / "feeds.txt").read_text().split()
    return parse_settings(
        {
            "data_dir": str(tmp_path / name),
            "storage": {"url": f"sqlite:///{tmp_path / name / 'agg.db'}"},
            "fetch": {"allow_private_networks": True, "retries": 0, "parse_workers": workers},
            "sources": [{"name": f"outlet {i}", "url": url} for i, url in enumerate(feeds)],
        }
    )


class FeatureLog(Tracker):
    """A Tracker that notes the features it is handed (and, with `drop`, ignores them)."""

    def __init__(self, settings: Settings, store: Store, *, drop: bool) -> None:
        super().__init__(settings, store)
        self.drop = drop
        self.handed: list[tuple[Record, LinkFeatures]] = []

    def after_upsert(self, records: Sequence[Record], **options: Any) -> None:
        features = options.pop("features", ())
        self.handed.extend(zip(records, features, strict=True))
        super().after_upsert(records, **options, features=() if self.drop else features)


def crawl_stories(settings: Settings, *, drop: bool = False) -> tuple[list[Row], FeatureLog]:
    """Crawl the sources one by one; (url, story, heat, related urls) of every record."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    workers = settings.fetch.parse_workers or 0
    with Store(settings.storage.url) as store, WorkPool(workers, preload=WORKER_MODULES) as pool:
        tracker = FeatureLog(settings, store, drop=drop)
        for source in settings.sources:
            options = CrawlOptions(source_names=(source.name,))
            run = crawl(settings, store, options=options, clock=clock, pool=pool, tracker=tracker)
            (report,) = asyncio.run(run)
            assert report.status == "ok", report
        rows = [row(stored.record, stored.story_id) for stored in store.iter_records()]
    return sorted(rows), tracker


def row(record: Record, story_id: str | None) -> Row:
    return (record.web_url, story_id, record.heat, tuple(r.web_url for r in record.related))


def clock() -> datetime:
    return NOW


def test_a_crawl_links_the_same_stories_with_features_from_workers_or_from_the_index(
    corpus: tuple[Path, int], tmp_path: Path
) -> None:
    root = corpus[0]
    fast, fast_log = crawl_stories(settings_for(tmp_path, "fast", root, workers=2))
    plain, plain_log = crawl_stories(settings_for(tmp_path, "plain", root, workers=0))
    computed, _ = crawl_stories(settings_for(tmp_path, "computed", root, workers=0), drop=True)
    assert len(fast) == FEEDS * ITEMS
    stories = [story for _, story, _, _ in fast]
    assert len(set(stories)) < len(stories), "the corpus should have multi-outlet stories"
    assert any(related for *_, related in fast)
    assert fast == plain == computed
    assert len(fast_log.handed) == len(plain_log.handed) == FEEDS * ITEMS
    for record, features in fast_log.handed:
        assert pickle.dumps(features) == pickle.dumps(record_features(record))
