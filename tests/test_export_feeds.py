"""Tests for aggregator.export.feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 exports.

The XML feeds are read back with feedparser (bozo must be 0) and with lxml's strict
parser; JSON Feed is checked structurally (feedparser 6.0 does not read JSON Feed). The
last test subscribes lemon24/reader to the written files over a real loopback server.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree
from pytest_httpserver import HTTPServer

from aggregator.export.feeds import (
    FeedSet,
    FeedWriteStats,
    feed_stems,
    render_atom,
    render_json_feed,
    render_rss,
    write_feeds,
)
from aggregator.export.feeds_items import safe_url
from aggregator.models import Image, Provider, Record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE = "https://news.example.org/"
BASE = "https://news.example.org"
HOSTILE_TITLE = "Bad ]]> <script>alert(1)</script> \x01\x1b\u202etxt.exe\u2066 \ud800 & <b>co</b>"
CLEAN_TITLE = "Bad ]]> <script>alert(1)</script> txt.exe & <b>co</b>"
HOSTILE_EXCERPT = "Say <script>x()</script> & ]]> \x0c done"
CLEAN_EXCERPT = "Say <script>x()</script> & ]]> done"
RENDERERS = {"rss": render_rss, "atom": render_atom, "json": render_json_feed}
CONTENT_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


def make_record(n: int, *, topics: tuple[str, ...] = ("AI",), **changes: Any) -> Record:
    """A published-looking record n hours before NOW, with a lead image."""
    fields: dict[str, Any] = {
        "title": f"Story {n}",
        "web_url": f"https://outlet{n % 3}.example.com/news/{n}",
        "provider": Provider(f"Outlet {n % 3}", f"outlet{n % 3}.example.com"),
        "excerpt": f"Excerpt of story {n}.",
        "published": NOW - timedelta(hours=n),
        "topics": topics,
        "images": (Image(f"https://img.example.com/{n}.png", 800, 600, f"Picture {n}"),),
        "is_published": True,
        "quality": 70,
    }
    fields.update(changes)
    return Record(**fields)


def hostile_record() -> Record:
    """Hostile text everywhere, and only script/data image URLs (all must be dropped)."""
    return make_record(
        0,
        title=HOSTILE_TITLE,
        excerpt=HOSTILE_EXCERPT,
        web_url="https://evil.example.net/a?x=1&y=<2>",
        provider=Provider("Evil \x07<i>News</i>", "evil.example.net"),
        topics=("AI", "Sec\u202eurity"),
        images=(
            Image("javascript:alert(1)//.png", 10, 10),
            Image(" java\tscript:alert(1)", 10, 10),
            Image("data:image/png;base64,AAAA", 10, 10),
        ),
    )


@pytest.fixture
def records() -> list[Record]:
    return [hostile_record(), make_record(1), make_record(2, topics=("AI", "Climate"))]


def render(fmt: str, records: list[Record], now: datetime = NOW) -> bytes:
    feed = FeedSet("all", "aggregator: all topics", records)
    return RENDERERS[fmt](feed, site_url=SITE, feed_url=f"{BASE}/feeds/all.{fmt}", now=now)


def parse_xml(data: bytes) -> Any:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    etree.fromstring(data)  # strict XML parser: must not raise
    return parsed


# --- RSS 2.0 ---------------------------------------------------------------------------


def test_rss_entries_read_back_with_feedparser(records: list[Record]) -> None:
    parsed = parse_xml(render("rss", records))
    assert parsed.version == "rss20"
    assert parsed.feed.title == "aggregator: all topics"
    assert parsed.feed.updated == "Sun, 01 Mar 2026 12:00:00 GMT"  # newest record, not "now"
    first, second, third = parsed.entries
    assert first.title == CLEAN_TITLE
    assert first.link == first.id == "https://evil.example.net/a?x=1&y=<2>"
    assert html.unescape(first.summary) == CLEAN_EXCERPT  # description is HTML, escaped
    assert [tag.term for tag in first.tags] == ["AI", "Security"]
    assert first.source == {"href": "https://evil.example.net/", "title": "Evil <i>News</i>"}
    assert "enclosures" not in first or first.enclosures == []
    assert "media_content" not in first
    assert second.title == "Story 1"
    assert second.summary == "Excerpt of story 1."
    assert second.published_parsed[:6] == (2026, 3, 1, 11, 0, 0)
    assert second.author == "Outlet 1"
    assert second.enclosures == [
        {"href": "https://img.example.com/1.png", "type": "image/png", "length": "0"}
    ]
    assert second.media_content == [
        {
            "url": "https://img.example.com/1.png",
            "medium": "image",
            "type": "image/png",
            "width": "800",
            "height": "600",
        }
    ]
    assert [tag.term for tag in third.tags] == ["AI", "Climate"]


def test_rss_guid_is_permalink() -> None:
    root = etree.fromstring(render("rss", [make_record(1)]))
    guid = root.find("channel/item/guid")
    assert guid is not None
    assert (guid.text, guid.get("isPermaLink")) == ("https://outlet1.example.com/news/1", "true")


# --- Atom 1.0 --------------------------------------------------------------------------


def test_atom_entries_read_back_with_feedparser(records: list[Record]) -> None:
    parsed = parse_xml(render("atom", records))
    assert parsed.version == "atom10"
    assert parsed.feed.id == f"{BASE}/feeds/all.atom"
    assert parsed.feed.updated == "2026-03-01T12:00:00Z"
    first, second, _ = parsed.entries
    assert first.title == CLEAN_TITLE
    assert first.title_detail.type == "text/plain"
    assert first.summary == CLEAN_EXCERPT
    assert first.link == first.id == "https://evil.example.net/a?x=1&y=<2>"
    assert first.author == "Evil <i>News</i>"
    assert [tag.term for tag in first.tags] == ["AI", "Security"]
    assert "enclosures" not in first or first.enclosures == []
    assert second.published == second.updated == "2026-03-01T11:00:00Z"
    assert second.enclosures == [{"href": "https://img.example.com/1.png", "type": "image/png"}]
    assert second.media_content[0]["width"] == "800"
    assert second.author_detail.href == "https://outlet1.example.com/"


def test_atom_feed_without_dated_entries_has_a_stable_updated() -> None:
    parsed = parse_xml(render("atom", [make_record(1, published=None)]))
    assert parsed.feed.updated == "1970-01-01T00:00:00Z"
    assert parsed.entries[0].updated == "1970-01-01T00:00:00Z"
    assert "published" not in parsed.entries[0]


# --- JSON Feed 1.1 ---------------------------------------------------------------------


def test_json_feed_structure(records: list[Record]) -> None:
    data = render("json", records)
    document = json.loads(data.decode("utf-8"))
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["title"] == "aggregator: all topics"
    assert document["home_page_url"] == SITE
    assert document["feed_url"] == f"{BASE}/feeds/all.json"
    items = document["items"]
    assert all(isinstance(item["id"], str) and item["url"] == item["id"] for item in items)
    first, second, _ = items
    assert first["title"] == CLEAN_TITLE
    assert first["summary"] == first["content_text"] == CLEAN_EXCERPT
    assert first["tags"] == ["AI", "Security"]
    assert first["authors"] == [{"name": "Evil <i>News</i>", "url": "https://evil.example.net/"}]
    assert "image" not in first
    assert second["image"] == "https://img.example.com/1.png"
    assert second["date_published"] == "2026-03-01T11:00:00Z"
    assert second["_aggregator"] == {"category": "news", "type": "article", "quality": 70}


# --- all formats -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_hostile_content_comes_out_inert(fmt: str) -> None:
    data = render(fmt, [hostile_record()])
    text = data.decode("utf-8")  # strict: no lone surrogates survived
    for bad in ("javascript", "data:image", "\x01", "\x07", "\x1b", "\x0c", "\u202e", "\u2066"):
        assert bad not in text
    if fmt != "json":
        assert "<script" not in text and "]]>" not in text and "CDATA" not in text


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_records_with_unsafe_or_repeated_links_are_left_out(fmt: str) -> None:
    bad = make_record(1, web_url="javascript:alert(1)", title="Bad link")
    rel = make_record(2, web_url="/relative/path", title="Relative")
    dup = make_record(3, web_url="https://outlet0.example.com/news/3", title="Duplicate")
    data = render(fmt, [bad, rel, make_record(3), dup])
    assert b"Story 3" in data
    for title in (b"Bad link", b"Relative", b"Duplicate"):
        assert title not in data


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_output_does_not_depend_on_the_clock(fmt: str, records: list[Record]) -> None:
    assert render(fmt, records, NOW) == render(fmt, records, NOW + timedelta(days=3))


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_future_dates_are_capped_at_now(fmt: str) -> None:
    future = make_record(1, published=NOW + timedelta(days=365))
    data = render(fmt, [future])
    assert b"2027" not in data
    assert b"2026-03-01T12:00:00Z" in data or b"01 Mar 2026 12:00:00 GMT" in data


@pytest.mark.parametrize(
    ("url", "expected_type"),
    [
        ("https://i.example.com/a.JPG?w=1", "image/jpeg"),
        ("https://i.example.com/a.webp", "image/webp"),
        ("https://i.example.com/resize/800x600/", "image/jpeg"),
        ("https://i.example.com/a.gif#x", "image/gif"),
    ],
)
def test_enclosure_type_is_guessed_from_the_extension(url: str, expected_type: str) -> None:
    parsed = parse_xml(render("rss", [make_record(1, images=(Image(url),))]))
    assert parsed.entries[0].enclosures[0]["type"] == expected_type
    assert "width" not in parsed.entries[0].media_content[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x?q=1", "https://a.example/x?q=1"),
        ("  http://a.example/a b\n", "http://a.example/a%20b"),
        ("java\tscript:alert(1)", None),
        ("\x00javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("vbscript:msgbox", None),
        ("//a.example/x", None),
        ("https://", None),
        ("https://[::1", None),
        ("", None),
    ],
)
def test_safe_url(url: str, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_render_rejects_non_http_feed_urls() -> None:
    with pytest.raises(ValueError, match="feed_url"):
        render_rss(FeedSet("all", "t", []), site_url=SITE, feed_url="javascript:x", now=NOW)


# --- write_feeds -----------------------------------------------------------------------


def feed_files(out: Path) -> list[str]:
    return sorted(path.name for path in (out / "feeds").iterdir())


def write(out: Path, records: list[Record], topics: list[str], **kw: Any) -> FeedWriteStats:
    options: dict[str, Any] = {"size": 50, "base_url": BASE, "now": NOW}
    options.update(kw)
    return write_feeds(out, records, topics, **options)


def test_write_feeds_writes_all_and_topic_files(tmp_path: Path, records: list[Record]) -> None:
    stats = write(tmp_path, records, ["AI", "Climate"])
    assert stats == FeedWriteStats(written=9, unchanged=0, removed=0)
    assert feed_files(tmp_path) == [
        f"{stem}.{ext}"
        for stem in ("all", "topic-ai", "topic-climate")
        for ext in ("atom", "json", "rss")
    ]
    climate = parse_xml((tmp_path / "feeds" / "topic-climate.rss").read_bytes())
    assert [entry.title for entry in climate.entries] == ["Story 2"]
    assert climate.feed.title == "aggregator: Climate"
    atom = parse_xml((tmp_path / "feeds" / "topic-ai.atom").read_bytes())
    assert len(atom.entries) == 3
    assert atom.feed.id == f"{BASE}/feeds/topic-ai.atom"


def test_unchanged_input_writes_nothing(tmp_path: Path, records: list[Record]) -> None:
    write(tmp_path, records, ["AI", "Climate"])
    before = {name: os.stat(tmp_path / "feeds" / name).st_mtime_ns for name in feed_files(tmp_path)}
    stats = write(tmp_path, records, ["AI", "Climate"], now=NOW + timedelta(hours=5))
    assert stats == FeedWriteStats(written=0, unchanged=9, removed=0)
    after = {name: os.stat(tmp_path / "feeds" / name).st_mtime_ns for name in feed_files(tmp_path)}
    assert after == before


def test_a_changed_record_rewrites_only_its_feeds(tmp_path: Path, records: list[Record]) -> None:
    write(tmp_path, records, ["AI", "Climate", "Space"])
    changed = [*records[:2], make_record(2, topics=("Climate",), title="Story 2, corrected")]
    stats = write(tmp_path, changed, ["AI", "Climate", "Space"])
    assert stats.written == 9  # all, AI (loses story 2), Climate (new title)
    assert stats.unchanged == 3  # Space
    assert "corrected" in (tmp_path / "feeds" / "topic-climate.json").read_text()


def test_only_the_newest_n_records_per_feed(tmp_path: Path) -> None:
    many = [make_record(n, topics=("AI",) if n % 2 else ("Climate",)) for n in range(1, 11)]
    write(tmp_path, many, ["AI", "Climate"], size=3)
    all_feed = parse_xml((tmp_path / "feeds" / "all.atom").read_bytes())
    assert [entry.title for entry in all_feed.entries] == ["Story 1", "Story 2", "Story 3"]
    ai = json.loads((tmp_path / "feeds" / "topic-ai.json").read_text())
    assert [item["title"] for item in ai["items"]] == ["Story 1", "Story 3", "Story 5"]
    climate = parse_xml((tmp_path / "feeds" / "topic-climate.rss").read_bytes())
    assert [entry.title for entry in climate.entries] == ["Story 2", "Story 4", "Story 6"]
    assert all("Climate" in [tag.term for tag in entry.tags] for entry in climate.entries)


def test_feeds_of_removed_topics_are_deleted(tmp_path: Path, records: list[Record]) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "notes.txt").write_text("not ours")
    write(tmp_path, records, ["AI", "Climate"])
    stats = write(tmp_path, records, ["AI"])
    assert stats == FeedWriteStats(written=0, unchanged=6, removed=3)
    assert "topic-climate.rss" not in feed_files(tmp_path)
    assert "notes.txt" in feed_files(tmp_path)


def test_topic_stems_are_safe_and_unique() -> None:
    stems = feed_stems(["C++", "C", "Künstliche Intelligenz", "人工智能", "../../etc", "AI"])
    assert stems["Künstliche Intelligenz"] == "topic-kunstliche-intelligenz"
    assert stems["../../etc"] == "topic-etc"
    assert stems["AI"] == "topic-ai"
    assert stems["C++"].startswith("topic-c-") and stems["C"].startswith("topic-c-")
    assert stems["人工智能"].startswith("topic-") and len(stems["人工智能"]) == len("topic-") + 8
    assert len(set(stems.values())) == len(stems)
    assert all(stem.replace("-", "").isalnum() and stem.isascii() for stem in stems.values())


@pytest.mark.parametrize("base_url", ["", "ftp://x.org", "javascript:alert(1)", "/export"])
def test_write_feeds_rejects_a_bad_base_url(tmp_path: Path, base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        write(tmp_path, [], ["AI"], base_url=base_url)


def test_empty_feeds_are_valid_and_stable(tmp_path: Path) -> None:
    write(tmp_path, [], ["AI"])
    for name in ("all.rss", "topic-ai.atom"):
        assert parse_xml((tmp_path / "feeds" / name).read_bytes()).entries == []
    assert write(tmp_path, [], ["AI"], now=NOW + timedelta(days=1)).written == 0


# --- a real feed reader subscribes over HTTP ----------------------------------------------


@pytest.fixture
def loopback_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    """A pytest-httpserver on 127.0.0.1; proxies are disabled so nothing leaves loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def test_reader_subscribes_to_the_exported_feeds(
    tmp_path: Path, records: list[Record], loopback_server: HTTPServer
) -> None:
    reader_lib = pytest.importorskip("reader")
    write(tmp_path / "export", records, ["AI"])
    for path in (tmp_path / "export" / "feeds").iterdir():
        loopback_server.expect_request(f"/feeds/{path.name}").respond_with_data(
            path.read_bytes(), content_type=CONTENT_TYPES[path.suffix[1:]]
        )
    expected = [(CLEAN_TITLE, "https://evil.example.net/a?x=1&y=<2>")]
    expected += [(r.title, r.web_url) for r in records[1:]]
    reader = reader_lib.make_reader(str(tmp_path / "r.sqlite"))
    try:
        for fmt in ("rss", "atom", "json"):
            url = loopback_server.url_for(f"/feeds/all.{fmt}")
            reader.add_feed(url)
            reader.update_feeds()
            assert reader.get_feed(url).last_exception is None
            entries = sorted(reader.get_entries(feed=url), key=lambda e: e.published, reverse=True)
            assert [(e.title, e.link) for e in entries] == expected, fmt
            assert [e.published for e in entries] == [r.published for r in records], fmt
            if fmt != "json":
                assert [e.href for e in entries[1].enclosures] == ["https://img.example.com/1.png"]
                assert entries[0].enclosures == ()
    finally:
        reader.close()
