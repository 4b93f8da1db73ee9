"""The fast path yields exactly the records of the plain path (issue 5).

fast       the crawl's `WorkPool` with worker processes, feedparser with its sanitiser off
           (our own `html_to_text` makes every excerpt and title safe), the unchanged-body skip
plain      everything in this process (`parse_workers: 0`), feedparser sanitising HTML as it
           does by default, no pool

`resolve_relative_uris` stays off in both: it is not a speed setting but our semantics
(without xml:base, an ``<img src="/x.jpg">`` copied from the article resolves against the
article's URL, not the feed's; see tests/test_feeds.py).

Compared field by field: every field of every `Record` handed to the store (topics, quality
and its reasons, provenance, text…) and every `SourceReport`. Nothing is excluded: with a
fixed clock, `provenance.fetched_at` and the date-dependent quality reasons — the only fields
that depend on the run — are equal too. Stories, heat and related are not compared: they
are computed after the store, in this process, on both paths alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator import worktasks
from aggregator.errors import AggregatorError
from aggregator.models import PageMetadata, RawEntry, Record, SourceReport
from aggregator.pipeline import WORKER_MODULES, crawl
from aggregator.settings import Settings, SourceSettings, parse_settings
from aggregator.store import Store
from aggregator.workpool import WorkPool
from aggregator.worktasks import (
    PageBody,
    SourceWork,
    TrackingConfig,
    build_source_records,
    extract_page_task,
    parse_feed_task,
)
from tests.loopback import REPO_ROOT, free_port, generate_corpus, serve_corpus

NOW = datetime.now(UTC).replace(microsecond=0)
FEEDS, ITEMS = 10, 6
BROKEN = "broken.xml"
Task = tuple[Callable[..., Any], tuple[Any, ...]]


def plain_feedparser() -> Any:
    """feedparser.parse with its default sanitising (our fast path turns it off)."""
    original = feedparser.parse

    def parse(stream: Any, **options: Any) -> Any:
        options.pop("sanitize_html", None)
        return original(stream, **options)

    return parse


@contextmanager
def plain_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(feedparser, "parse", plain_feedparser())
        yield


def topics() -> list[dict[str, Any]]:
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    return list(config["topics"])


def settings_for(
    tmp_path: Path, name: str, sources: list[dict[str, Any]], workers: int
) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path / name),
            "storage": {"url": f"sqlite:///{tmp_path / name / 'agg.db'}"},
            "fetch": {"allow_private_networks": True, "retries": 0, "parse_workers": workers},
            "sources": sources,
            "topics": topics(),
        }
    )


class RecordingStore(Store):
    """A real store that also keeps every record handed to it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.handed: list[Record] = []

    def upsert_records(self, records: Sequence[Record]) -> Any:
        self.handed.extend(records)
        return super().upsert_records(records)


def crawl_into(settings: Settings) -> tuple[dict[str, Record], list[SourceReport]]:
    (Path(settings.data_dir)).mkdir(parents=True, exist_ok=True)
    store = RecordingStore(settings.storage.url)
    with store:
        reports = asyncio.run(crawl(settings, store, clock=lambda: NOW))
        return {record.web_url: record for record in store.handed}, reports


def assert_same_records(fast: dict[str, Record], plain: dict[str, Record]) -> None:
    assert fast.keys() == plain.keys()
    for url, record in plain.items():
        for field in dataclasses.fields(Record):
            got, want = getattr(fast[url], field.name), getattr(record, field.name)
            assert got == want, f"{url}: {field.name} differs: {got!r} != {want!r}"


# --- the loopback corpus, end to end -----------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    port = free_port("127.0.0.2")
    root = generate_corpus(
        tmp_path_factory.mktemp("corpus") / "web", feeds=FEEDS, items=ITEMS, port=port
    )
    (root / BROKEN).write_bytes(b"<html><body>moved, not a feed</body></html>")
    with serve_corpus(root, port):
        yield root, port


def corpus_sources(root: Path, port: int) -> list[dict[str, Any]]:
    feeds = (root / "feeds.txt").read_text().split()
    sources = [{"name": f"outlet {i}", "url": url} for i, url in enumerate(feeds)]
    return [*sources, {"name": "broken", "url": f"http://127.0.0.2:{port}/{BROKEN}"}]


def test_pool_crawl_hands_the_store_the_records_of_the_plain_crawl(
    corpus: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = corpus_sources(*corpus)
    with plain_path(monkeypatch):
        plain, plain_reports = crawl_into(settings_for(tmp_path, "plain", sources, workers=0))
    fast, fast_reports = crawl_into(settings_for(tmp_path, "fast", sources, workers=2))
    assert len(plain) == FEEDS * ITEMS
    assert all(record.topics or record.quality for record in plain.values())
    assert_same_records(fast, plain)
    assert fast_reports == plain_reports
    broken = next(report for report in fast_reports if report.source == "broken")
    assert broken.error is not None and "not a feed" in broken.error


# --- the real feeds and pages of ../shared/eval ------------------------------------------


def eval_feeds(eval_dir: Path) -> list[Path]:
    folders = [eval_dir / "feeds-rss-parser" / "input", eval_dir / "feeds-miniflux"]
    return sorted(
        p for f in folders for p in f.rglob("*") if p.is_file() and "LICENSE" not in p.name
    )


def eval_pages(eval_dir: Path) -> list[Path]:
    folders = ("postlight-parser-fixtures", "mozilla-readability-testpages", "newspaper4k-testdata")
    return sorted(p for f in folders for p in (eval_dir / f).rglob("*.html"))


def outcome_of(fn: Callable[..., Any], *args: Any) -> Any:
    """The value, or the error's type and text (a bad document fails the same way)."""
    try:
        return fn(*args)
    except AggregatorError as exc:
        return (type(exc).__name__, str(exc))


async def on_pool(pool: WorkPool, calls: Sequence[Task]) -> list[Any]:
    async def one(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return await pool.run(fn, *args)
        except AggregatorError as exc:
            return (type(exc).__name__, str(exc))

    return list(await asyncio.gather(*(one(fn, args) for fn, args in calls)))


def source_work(
    settings: Settings, name: str, entries: Sequence[RawEntry], pages: dict[str, PageMetadata]
) -> SourceWork:
    source = SourceSettings(name=name, url="https://eval.example/feed.xml")
    tracking = TrackingConfig.of(settings.model_copy(update={"sources": (source,)}))
    return SourceWork(tracking, source, source.url, tuple(entries), pages, frozenset(), NOW)


@pytest.mark.eval
def test_eval_feeds_parse_and_build_alike_on_both_paths(
    eval_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = eval_feeds(eval_dir)
    assert len(feeds) > 20
    urls = [f"https://eval.example/{path.relative_to(eval_dir)}" for path in feeds]
    arguments: list[tuple[Any, ...]] = [
        (p.read_bytes(), url, {}) for p, url in zip(feeds, urls, strict=True)
    ]
    calls: list[Task] = [(parse_feed_task, args) for args in arguments]
    with plain_path(monkeypatch):
        plain = [outcome_of(parse_feed_task, *args) for args in arguments]
    settings = parse_settings({"topics": topics()})
    with WorkPool(2, preload=WORKER_MODULES) as pool:
        fast = asyncio.run(on_pool(pool, calls))
        assert fast == plain
        parsed = [feed for feed in plain if not isinstance(feed, tuple)]
        assert sum(len(feed.entries) for feed in parsed) > 300
        works = [source_work(settings, f"feed {i}", f.entries, {}) for i, f in enumerate(parsed)]
        fast_records = asyncio.run(on_pool(pool, [(build_source_records, (w,)) for w in works]))
    plain_records = [build_source_records(work) for work in works]
    for fast_batch, plain_batch in zip(fast_records, plain_records, strict=True):
        assert_same_records({r.web_url: r for r in fast_batch}, {r.web_url: r for r in plain_batch})


@pytest.mark.eval
def test_eval_pages_extract_and_merge_alike_on_both_paths(eval_dir: Path) -> None:
    pages = eval_pages(eval_dir)
    assert len(pages) > 200
    bodies = [
        PageBody(f"https://eval.example/{path.relative_to(eval_dir)}", path.read_bytes(), {})
        for path in pages
    ]
    calls = [(extract_page_task, (body, NOW)) for body in bodies]
    plain = [extract_page_task(body, NOW) for body in bodies]
    settings = parse_settings({"topics": topics()})
    with WorkPool(2, preload=WORKER_MODULES) as pool:
        fast = asyncio.run(on_pool(pool, calls))
        assert fast == plain
        extracted = {body.url: o.page for body, o in zip(bodies, plain, strict=True) if o.page}
        assert len(extracted) > 200
        entries = [RawEntry(guid=url, link=url, title="", summary="") for url in extracted]
        work = source_work(settings, "pages", entries, extracted)
        (fast_records,) = asyncio.run(on_pool(pool, [(build_source_records, (work,))]))
    plain_records = build_source_records(work)
    assert len(plain_records) > 200
    assert_same_records({r.web_url: r for r in fast_records}, {r.web_url: r for r in plain_records})


# --- the unchanged-body skip ---------------------------------------------------------------


def test_an_unchanged_body_is_not_parsed_again_when_the_server_ignores_validators(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = "<item><title>Harbour bridge reopens</title><link>{}</link><guid>g1</guid></item>"
    body = '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{}</channel></rss>'
    link = httpserver.url_for("/story")
    feed = body.format(item.format(link))
    httpserver.expect_request("/feed").respond_with_handler(
        lambda _: Response(feed, content_type="application/rss+xml")  # no ETag, no 304
    )
    parsed: list[str] = []

    def counting_parse(content: bytes, url: str, headers: Any) -> Any:
        parsed.append(url)
        return parse_feed_task(content, url, headers)

    monkeypatch.setattr(worktasks, "parse_feed_task", counting_parse)  # the crawl reads it there
    source = {"name": "s", "url": httpserver.url_for("/feed"), "pages": False}
    settings = settings_for(tmp_path, "skip", [source], workers=0)
    first = crawl_into(settings)[1]
    again = crawl_into(settings)[1]
    assert [r.status for r in (*first, *again)] == ["ok", "not modified"]
    assert again[0].not_modified and len(parsed) == 1
    feed = body.format(item.format(link) + item.format(link + "2").replace("g1", "g2"))
    changed = crawl_into(settings)[1]
    assert (changed[0].status, changed[0].new, len(parsed)) == ("ok", 1, 2)
