"""Pages that fail with their entry are fetched later by the enrichment step (real server)."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.enrich import MAX_ATTEMPTS, enrich_pending
from aggregator.pipeline import crawl
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def feed(base: str, slugs: list[str], category: str = "") -> str:
    tag = f"<category>{category}</category>" if category else ""
    items = "".join(
        f"<item><title>Story {slug} about the harbour</title><link>{base}/{slug}</link>"
        f"<guid>{slug}</guid><pubDate>Sun, 01 Mar 2026 10:00:00 GMT</pubDate>"
        f"<description>Short.</description>{tag}</item>"
        for slug in slugs
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    )


def page(base: str, slug: str) -> str:
    return (
        f'<html><head><meta property="og:title" content="Story {slug} about the harbour">'
        f'<meta property="og:description" content="The full description of story {slug}.">'
        f'<meta property="og:image" content="{base}/{slug}.jpg">'
        '<meta property="og:image:width" content="1200">'
        '<meta property="og:image:height" content="675">'
        f'<link rel="amphtml" href="{base}/amp/{slug}"></head><body><p>Body.</p></body></html>'
    )


def settings_for(
    server: HTTPServer, tmp_path: Path, topics: tuple[dict[str, object], ...] = (), **fetch: object
) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path),
            "storage": {"url": f"sqlite:///{tmp_path / 'e.db'}"},
            "fetch": {"allow_private_networks": True, "retries": 0, **fetch},
            "sources": [{"name": "s", "url": server.url_for("/feed")}],
            "topics": list(topics),
        }
    )


class Flaky:
    """Fails the first `failures` requests with `status`, then serves the page."""

    def __init__(self, base: str, slug: str, failures: int, status: int) -> None:
        self.base, self.slug, self.failures, self.status = base, slug, failures, status

    def __call__(self, request: Request) -> Response:
        if self.failures > 0:
            self.failures -= 1
            return Response("busy", status=self.status)
        return Response(page(self.base, self.slug), content_type="text/html")


def pending(store: Store) -> dict[str, bool]:
    return {
        s.record.web_url.rsplit("/", 1)[1]: s.record.provenance.page_pending
        for s in store.iter_records()
    }


def test_a_transient_page_failure_is_retried_later(httpserver: HTTPServer, tmp_path: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed").respond_with_data(feed(base, ["a", "b"]))
    httpserver.expect_request("/a").respond_with_handler(Flaky(base, "a", 1, 503))
    httpserver.expect_request("/b").respond_with_data("gone", status=404)
    settings = settings_for(httpserver, tmp_path)
    with Store(settings.storage.url) as store:
        asyncio.run(crawl(settings, store, clock=lambda: NOW))
        assert pending(store) == {"a": True, "b": False}  # a 404 is not worth another try
        report = asyncio.run(enrich_pending(settings, store, limit=10, clock=lambda: NOW))
        assert (report.attempted, report.enriched, report.still_pending) == (1, 1, 0)
        assert pending(store) == {"a": False, "b": False}
        record = store.get_record(f"{base}/a")
        assert record is not None
        assert record.record.amp_web_url == f"{base}/amp/a"
        assert record.record.excerpt == "The full description of story a."
        assert (record.record.images[0].width, record.record.images[0].height) == (1200, 675)
        assert store.count_records() == 2


def test_pages_beyond_the_per_source_cap_wait_for_enrichment(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed").respond_with_data(feed(base, ["a", "b", "c"]))
    for slug in "abc":
        httpserver.expect_request(f"/{slug}").respond_with_data(
            page(base, slug), content_type="text/html"
        )
    settings = settings_for(httpserver, tmp_path, max_pages_per_source=1)
    with Store(settings.storage.url) as store:
        asyncio.run(crawl(settings, store, clock=lambda: NOW))
        assert sum(pending(store).values()) == 2
        asyncio.run(enrich_pending(settings, store, limit=10, clock=lambda: NOW))
        assert not any(pending(store).values())
        assert all(s.record.amp_web_url for s in store.iter_records())


@pytest.mark.parametrize("status", [503, 429])
def test_a_page_that_keeps_failing_stops_after_the_attempt_limit(
    httpserver: HTTPServer, tmp_path: Path, status: int
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed").respond_with_data(feed(base, ["a"]))
    httpserver.expect_request("/a").respond_with_handler(Flaky(base, "a", 100, status))
    settings = settings_for(httpserver, tmp_path)
    with Store(settings.storage.url) as store:
        asyncio.run(crawl(settings, store, clock=lambda: NOW))
        attempts = 0
        while asyncio.run(enrich_pending(settings, store, limit=10, clock=lambda: NOW)).attempted:
            attempts += 1
            assert attempts <= MAX_ATTEMPTS
        assert attempts == MAX_ATTEMPTS
        assert store.count_records() == 1


def test_enrichment_keeps_the_feed_categories_and_the_topics_they_map(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed").respond_with_data(feed(base, ["a"], category="Ports"))
    httpserver.expect_request("/a").respond_with_handler(Flaky(base, "a", 1, 503))
    topics = ({"name": "Shipping", "categories": ["ports"]},)
    settings = settings_for(httpserver, tmp_path, topics=topics)
    with Store(settings.storage.url) as store:
        asyncio.run(crawl(settings, store, clock=lambda: NOW))
        assert pending(store) == {"a": True}
        asyncio.run(enrich_pending(settings, store, limit=10, clock=lambda: NOW))
        assert pending(store) == {"a": False}
        stored = store.get_record(f"{base}/a")
        assert stored is not None
        assert stored.record.excerpt == "The full description of story a."  # the page's
        assert stored.record.provenance.categories == ("Ports",)
        assert stored.record.topics == ("Shipping",)


def test_a_change_of_feed_categories_alone_reaches_the_store(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    topics = ({"name": "Shipping", "categories": ["docks"]},)
    settings = settings_for(httpserver, tmp_path, topics=topics)
    with Store(settings.storage.url) as store:
        for category, expected in (("Ports", ()), ("Docks", ("Shipping",))):
            httpserver.clear()
            httpserver.expect_request("/feed").respond_with_data(feed(base, ["a"], category))
            httpserver.expect_request("/a").respond_with_data(
                page(base, "a"), content_type="text/html"
            )
            asyncio.run(crawl(settings, store, clock=lambda: NOW))
            stored = store.get_record(f"{base}/a")
            assert stored is not None
            assert stored.record.provenance.categories == (category,)
            assert stored.record.topics == expected


def gzipped(body: str, *, cut: bool = False) -> Response:
    data = gzip.compress(body.encode())
    data = data[: len(data) // 2] if cut else data
    return Response(data, content_type="text/html", headers={"Content-Encoding": "gzip"})


@pytest.mark.parametrize("workers", [0, 1])
def test_a_gzipped_page_gives_the_record_a_plain_one_gives(
    httpserver: HTTPServer, tmp_path: Path, workers: int
) -> None:
    """Pages stay compressed until the worker that extracts them: same records either way."""
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed").respond_with_data(feed(base, ["a", "b"]))
    httpserver.expect_request("/a").respond_with_response(gzipped(page(base, "a")))
    httpserver.expect_request("/b").respond_with_data(page(base, "b"), content_type="text/html")
    settings = settings_for(httpserver, tmp_path, parse_workers=workers)
    with Store(settings.storage.url) as store:
        asyncio.run(crawl(settings, store, clock=lambda: NOW))
        a, b = (store.get_record(f"{base}/{slug}") for slug in "ab")
        assert a is not None and b is not None
        assert a.record.excerpt == "The full description of story a."
        assert a.record.amp_web_url == f"{base}/amp/a"
        assert (a.record.images[0].width, a.record.images[0].height) == (1200, 675)
        assert b.record.amp_web_url == f"{base}/amp/b"  # the plain page, for comparison
        assert pending(store) == {"a": False, "b": False}


def test_a_compressed_page_over_the_cap_is_skipped_and_a_cut_one_retried(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/feed").respond_with_data(feed(base, ["bomb", "cut", "ok"]))
    bomb = page(base, "bomb") + "<!--" + " " * 3_000_000 + "-->"
    httpserver.expect_request("/bomb").respond_with_response(gzipped(bomb))
    httpserver.expect_request("/cut").respond_with_response(gzipped(page(base, "cut"), cut=True))
    httpserver.expect_request("/ok").respond_with_response(gzipped(page(base, "ok")))
    settings = settings_for(httpserver, tmp_path, max_body_bytes=1_000_000)
    with Store(settings.storage.url) as store:
        asyncio.run(crawl(settings, store, clock=lambda: NOW))
        assert pending(store) == {"bomb": False, "cut": True, "ok": False}
        bombed = store.get_record(f"{base}/bomb")
        assert bombed is not None and bombed.record.amp_web_url == ""  # feed data only
        ok = store.get_record(f"{base}/ok")
        assert ok is not None and ok.record.amp_web_url == f"{base}/amp/ok"
