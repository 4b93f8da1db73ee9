"""The lxml fast path (aggregator.feeds_fast) against feedparser, the reference.

Every document is parsed twice through `parse_feed`: with the fast path and with
`fast=False` (feedparser only); the two `ParsedFeed` values must be equal. A spy on
`feeds._run_feedparser` tells which path a document took, so a fast path that silently
always falls back fails the tests that expect it to be taken.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import feeds, feeds_fast
from aggregator.dates import parse_datetime
from aggregator.errors import ParseError
from aggregator.models import ParsedFeed
from tests.loopback import generate_corpus

DATA = Path(__file__).parent / "data" / "feeds"
XML_FIXTURES = sorted(DATA.glob("*.xml"))
FEED_URL = "https://fixture.example/feeds/main.xml"


def _both(content: bytes, url: str = FEED_URL) -> tuple[ParsedFeed | str, bool]:
    """(result, took the fast path); asserts both paths agree, errors included."""
    answers: list[object] = []
    original = feeds_fast.parse

    def spy(text: str, feed_url: str) -> feeds_fast.FastFeed | None:
        answers.append(original(text, feed_url))
        return answers[-1]  # type: ignore[return-value]

    results: list[ParsedFeed | str] = []
    for fast in (True, False):
        feeds.feeds_fast.parse = spy  # type: ignore[assignment]
        try:
            results.append(feeds.parse_feed(content, url=url, fast=fast))
        except ParseError as error:
            results.append(f"ParseError: {error}")
        finally:
            feeds.feeds_fast.parse = original  # type: ignore[assignment]
    assert results[0] == results[1]
    assert len(answers) <= 1  # fast=False never asks the fast path
    return results[0], bool(answers and answers[0] is not None)


def _rss(items: str, *, channel: str = "", head: str = "", ns: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{head}<rss version="2.0"{ns}><channel>'
        f"<title>T</title><link>https://t.example/</link>{channel}{items}</channel></rss>"
    ).encode()


# -- repository data and a generated bench corpus ----------------------------------------


@pytest.mark.parametrize("path", XML_FIXTURES, ids=lambda p: p.name)
def test_fixtures_match_feedparser(path: Path) -> None:
    _, fast = _both(path.read_bytes())
    # atom03 is outside the fast path; the xml:base fixture has xml:base below the root.
    assert fast == (path.name not in ("atom03.xml", "atom10_base.xml"))


@pytest.fixture(scope="module")
def bench_feeds(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("bench") / "corpus"
    generate_corpus(out, feeds=12, items=8, port=8089, seed=3)
    return sorted(out.glob("o*/feed.xml"))


def test_bench_corpus_takes_the_fast_path(bench_feeds: list[Path]) -> None:
    assert len(bench_feeds) == 12
    formats = set()
    for path in bench_feeds:
        parsed, fast = _both(path.read_bytes(), f"http://127.0.0.2:8089/{path.parent.name}/f.xml")
        assert fast, path
        assert isinstance(parsed, ParsedFeed) and len(parsed.entries) == 8
        formats.add(parsed.format)
    assert formats == {"rss20", "atom10", "rss10"}


# -- real feeds from ../shared/eval (skipped when absent) ----------------------------------


def _eval_paths(eval_dir: Path) -> Iterator[Path]:
    yield from sorted((eval_dir / "feeds-rss-parser" / "input").iterdir())
    yield from sorted((eval_dir / "feeds-miniflux").glob("*/*.*"))


@pytest.mark.eval
def test_eval_feeds_match_feedparser(eval_dir: Path) -> None:
    taken = [path.name for path in _eval_paths(eval_dir) if _both(path.read_bytes())[1]]
    # Measured: 23 of 50 documents (plain RSS 2.0/RDF/Atom); podcasts, odd prefixes, fall back.
    assert len(taken) >= 20


# -- feedparser quirks the replica must reproduce ------------------------------------------

_QUIRKS = {
    "permalink guid is the link": "<item><title>a</title><guid>/p/1</guid></item>",
    "guid not a permalink": '<item><guid isPermaLink="false">x-1</guid><link>/a</link></item>',
    "link after guid": "<item><guid>https://g.example/1</guid><link>https://l.example/</link></item>",
    "media:description becomes content": (
        "<item><title>a</title><description>Sum</description>"
        '<media:content url="https://i.example/a.jpg" medium="image">'
        "<media:description>&lt;img src='https://i.example/b.jpg'&gt;</media:description>"
        "</media:content></item>"
    ),
    "content before description": (
        "<item><content:encoded>&lt;p&gt;Body&lt;/p&gt;</content:encoded>"
        "<description>Short</description></item>"
    ),
    "only content": (
        "<item><content:encoded><![CDATA[<p>Body <img src='/x.png'></p>]]></content:encoded></item>"
    ),
    "media:title first wins": "<item><media:title>M</media:title><title>T</title></item>",
    "authors with emails": (
        "<item><author>ada@example.com (Ada Q)</author><dc:creator>Bo</dc:creator>"
        "<dc:creator> </dc:creator></item>"
    ),
    "categories": (
        '<item><category domain="d">One</category><category>Two</category><category>One</category>'
        '<dc:subject>Three</dc:subject><media:category label="L">x</media:category></item>'
    ),
    "mojibake repaired": "<item><title>CafÃ©</title><description>\u0080 x</description></item>",
    "link with entity-like query": "<item><link>https://e.example/?a=1&amp;amp;b;=2</link></item>",
    "enclosure image": '<item><enclosure url="/e.jpg" type="IMAGE/JPEG" length="1"/></item>',
    "thumbnail text": "<item><media:thumbnail>/t.jpg</media:thumbnail></item>",
    "rss dates": (
        "<item><pubDate>Wed, 4 Jun 2025 10:51:56 +0200</pubDate>"
        "<dc:date>2025-06-05T07:30:00.25-03:00</dc:date></item>"
    ),
    "empty elements": "<item><title/><link/><description/><guid/></item>",
    "unknown extension": (
        '<item xmlns:x="urn:x"><x:rank>1</x:rank><slash:comments>3</slash:comments>'
        "<comments>/c</comments><title>t</title></item>"
    ),
}
_NS = (
    ' xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:slash="http://purl.org/rss/1.0/modules/slash/"'
)


@pytest.mark.parametrize("items", _QUIRKS.values(), ids=_QUIRKS.keys())
def test_rss_quirks_match_on_the_fast_path(items: str) -> None:
    _, fast = _both(_rss(items, ns=_NS))
    assert fast


def test_channel_hints_and_titles() -> None:
    channel = (
        '<ttl>30</ttl><sy:updatePeriod xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">'
        "Hourly</sy:updatePeriod><image><url>/l.png</url><title>Logo</title></image>"
        "<skipHours><hour>1</hour></skipHours><title>Second</title>"
    )
    parsed, fast = _both(_rss("<item><title>i</title></item>", channel=channel))
    assert fast and isinstance(parsed, ParsedFeed)
    assert (parsed.title, parsed.hints.ttl_minutes, parsed.hints.update_period) == (
        "Second",
        30,
        "hourly",
    )


def test_atom_shapes_match_on_the_fast_path() -> None:
    atom = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://b.example/x/">'
        "<id>https://b.example/</id><title type='html'>A &amp;amp; B</title>"
        "<entry><id>tag:b,2025:1</id><title>E</title><link href='e.html'/>"
        "<link rel='enclosure' type='image/png' href='/i.png'/>"
        "<author><name>N</name><email>n@b.example</email></author><author><email>o@b.example</email>"
        "</author><category term='c' label='L'/><updated>2025-06-06T07:45:00Z</updated>"
        "<content type='html'>&lt;p&gt;x&lt;/p&gt;</content><summary>s</summary></entry>"
        "<entry><content src='https://b.example/c'/></entry></feed>"
    )
    parsed, fast = _both(atom.encode())
    assert fast and isinstance(parsed, ParsedFeed) and parsed.link == "https://b.example/"


# -- what makes the fast path say "don't know" ---------------------------------------------

_FALLBACKS = {
    "malformed": _rss("<item><title>a</b></item>"),
    "html entity": _rss("<item><title>a&nbsp;b</title></item>"),
    "entity doctype": _rss(
        "<item><title>&e;</title></item>", head='<!DOCTYPE rss [<!ENTITY e "x">]>'
    ),
    "netscape doctype": _rss(
        "<item/>", head='<!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN">'
    ),
    "xml:base on an entry": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry xml:base="/x/"><link href="a"/>'
        b"</entry></feed>"
    ),
    "xhtml content": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml"><b>x</b></div></content></entry></feed>'
    ),
    "base64 content": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="image/png">aGk=</content>'
        b"</entry></feed>"
    ),
    "markup in description": _rss("<item><description>a <b>b</b></description></item>"),
    "source element": _rss("<item><source url='https://s.example/'>S</source></item>"),
    "odd date": _rss("<item><pubDate>Seg, 24 Set 2018 19:42:40 -0300</pubDate></item>"),
    "two pubDates": _rss("<item><pubDate>Wed, 4 Jun 2025 10:51:56 GMT</pubDate>" * 2 + "</item>"),
    "prefix remapped": _rss(
        "<item><media:title>x</media:title></item>", ns=' xmlns:media="urn:not-media"'
    ),
    "risky unknown element": _rss("<item><x:description xmlns:x='urn:x'>d</x:description></item>"),
    "atom 0.3": b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>t</title></feed>',
    "not a feed": b"<note><to>x</to></note>",
    "deep nesting": _rss("<item>" + "<x>" * 300 + "</x>" * 300 + "</item>"),
}


@pytest.mark.parametrize("content", _FALLBACKS.values(), ids=_FALLBACKS.keys())
def test_fallback_triggers(content: bytes) -> None:
    _, fast = _both(content)
    assert not fast


def test_entity_bombs_stay_defused() -> None:
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    body = f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "lol">{levels}]>'
    content = body + '<rss version="2.0"><channel><item><title>&l9;</title></item></channel></rss>'
    parsed, fast = _both(content.encode())
    assert not fast and isinstance(parsed, ParsedFeed) and len(parsed.entries[0].title) < 100
    assert feeds_fast.parse(content, FEED_URL) is None  # lxml is never shown a DTD


# -- the tables copied from feedparser still describe it -----------------------------------


def test_handler_table_matches_feedparser() -> None:
    parser = feedparser.api.StrictFeedParser
    names = {m.split("_", 2)[2] for m in dir(parser) if m.startswith(("_start_", "_end_"))}
    assert names == set(feeds_fast.HANDLERS)


def test_namespace_table_matches_feedparser() -> None:
    table = feedparser.mixin._FeedParserMixin.namespaces
    assert {k.lower(): v for k, v in table.items()} == feeds_fast._NAMESPACES


def test_cp1252_table_matches_feedparser() -> None:
    assert feedparser.html._cp1252 == feeds_fast._CP1252


def _random_dates(rng: random.Random) -> Iterator[str]:
    start = datetime(1999, 1, 1, tzinfo=UTC)
    for _ in range(400):
        moment = start + timedelta(seconds=rng.randrange(40 * 365 * 86400))
        offset = timedelta(minutes=rng.choice((0, 60, -300, 330, 765, -720)))
        local = moment.astimezone(UTC).replace(tzinfo=None) + offset
        sign = "-" if offset < timedelta(0) else "+"
        hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
        yield format_datetime(moment, usegmt=True)
        yield format_datetime(moment, usegmt=True).replace("GMT", rng.choice(("UT", "UTC")))
        yield local.strftime(f"%a, %d %b %Y %H:%M:%S {sign}{hours:02d}{minutes:02d}")[5:]
        yield local.strftime(f"%Y-%m-%dT%H:%M:%S.%f{sign}{hours:02d}:{minutes:02d}")
        yield moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_safe_dates_agree_with_feedparser() -> None:
    for text in _random_dates(random.Random(7)):
        assert feeds_fast._SAFE_DATE.fullmatch(text), text
        parsed = feedparser.datetimes._parse_date(text)
        assert parsed is not None, text
        expected = datetime(*parsed[:6], tzinfo=UTC)
        assert parse_datetime(text) == expected, text


def test_a_bug_in_the_fast_path_costs_speed_not_the_feed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    item = "<item><title>Kept</title><link>https://t.example/a</link></item>"

    def broken(text: str, url: str) -> feeds_fast.FastFeed | None:
        raise KeyError("a bug")

    monkeypatch.setattr(feeds.feeds_fast, "parse", broken)
    parsed = feeds.parse_feed(_rss(item), url=FEED_URL)
    assert [entry.title for entry in parsed.entries] == ["Kept"]
    assert "bug in the fast feed parser" in caplog.text


# feedparser 6.0's email search in `_FeedParserMixin._sync_author_detail`, verbatim.
FEEDPARSER_EMAIL = (
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)


def test_the_email_regex_is_feedparsers_own() -> None:
    source = inspect.getsource(feeds._FEEDPARSER_SYNC_AUTHOR)
    assert f"re.search(r'''{FEEDPARSER_EMAIL}''', author)" in source


@settings(max_examples=3000)
@given(st.text(alphabet="ab1.-+_@[]?=sbjct() <>", max_size=60))
def test_the_linear_email_search_finds_what_feedparsers_finds(text: str) -> None:
    expected = re.search(FEEDPARSER_EMAIL, text)
    found = feeds_fast._EMAIL.search(text)
    assert (found and found.span()) == (expected and expected.span())


def test_a_long_author_is_split_in_linear_time_on_both_paths() -> None:
    # feedparser's regex rescanned the run of address characters from each position: a
    # 40,000-character author took 5.6 s, this one would take about two hours.
    author = "x" * 1_000_000 + " jane@example.com (Jane)"
    parsed, fast = _both(_rss(f"<item><title>t</title><author>{author}</author></item>"))
    assert fast and isinstance(parsed, ParsedFeed)
    assert parsed.entries[0].authors == ("x" * 1_000_000 + " (Jane",)


def test_an_entry_keeps_its_first_hundred_categories_on_both_paths() -> None:
    # Each tag was compared with every kept one (feedparser's list, copied by the fast
    # path): 8,000 distinct categories took 0.8 s, 100,000 would take two minutes, and
    # all of them went into the stored record.
    categories = "".join(f"<category>c{n}</category>" for n in range(20_000))
    parsed, fast = _both(_rss(f"<item><title>t</title>{categories}</item>"))
    assert fast and isinstance(parsed, ParsedFeed)
    assert parsed.entries[0].categories == tuple(f"c{n}" for n in range(feeds_fast.MAX_TAGS))
    tags = [f"t{n}" for n in range(1000)]
    document = {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "tags": tags}]}
    (entry,) = feeds.parse_feed(json.dumps(document).encode(), url=FEED_URL).entries
    assert entry.categories == tuple(tags[: feeds_fast.MAX_TAGS])
