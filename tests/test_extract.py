"""Tests for aggregator.extract: each fallback chain, decoding, robustness, eval floors."""

from __future__ import annotations

import codecs
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.errors import ExtractError
from aggregator.extract import extract_page
from aggregator.extract_doc import _XML_DECL, decode_html_with_utf8, parse_page
from aggregator.models import Image
from aggregator.text import MAX_MARKUP_LENGTH

PAGES = Path(__file__).parent / "data" / "pages"
URL = "https://www.example.com/news/story.html"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def page(head: str = "", body: str = "", lang: str = "en") -> str:
    """A minimal HTML document with `head` and `body` markup."""
    return f'<!DOCTYPE html><html lang="{lang}"><head>{head}</head><body>{body}</body></html>'


def meta(key: str, value: str, attr: str = "property") -> str:
    """One `<meta>` tag."""
    return f'<meta {attr}="{key}" content="{value}">'


def jsonld(data: object) -> str:
    """One JSON-LD script block."""
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def extract(html: str | bytes, url: str = URL, **kwargs: object) -> object:
    """`extract_page` with a fixed clock."""
    return extract_page(html, url, now=NOW, **kwargs)  # type: ignore[arg-type]


ARTICLE = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": "LD headline"}
PARAGRAPH = "<p>" + "This paragraph is long enough to count as the lead of the article. " * 2


# --- title ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        (meta("og:title", "OG title") + meta("twitter:title", "TW", "name"), "", "OG title"),
        (meta("twitter:title", "TW title", "name") + jsonld(ARTICLE), "", "TW title"),
        (jsonld(ARTICLE) + "<title>LD headline - Example</title>", "", "LD headline"),
        ("<title>Doc title - Example</title>", "<h1>H1 title</h1>", "Doc title"),
        ("", "<h1>  H1 \n title </h1>", "H1 title"),
        (
            meta("og:title", "OG &amp; title | Example") + meta("og:site_name", "Example"),
            "",
            "OG & title",
        ),
        (
            meta("og:title", "Example")
            + meta("og:site_name", "Example")
            + "<title>Real one</title>",
            "",
            "Real one",
        ),
        # A declared article title (Dublin Core, analytics) before the social one.
        (meta("og:title", "OG title") + meta("sailthru.title", "Declared", "name"), "", "Declared"),
        # The JSON-LD headline and <title> agree against og:title.
        (
            meta("og:title", "OG title") + jsonld(ARTICLE) + "<title>LD headline - Example</title>",
            "",
            "LD headline",
        ),
        ("", "", None),
    ],
)
def test_title_chain(head: str, body: str, expected: str | None) -> None:
    assert extract(page(head, body)).title == expected  # type: ignore[attr-defined]


def test_title_is_the_visible_headline_when_it_retells_the_shared_one() -> None:
    head = meta("og:title", "An ode to the Rosetta spacecraft as it plummets to its death") + (
        "<title>Rosetta spacecraft ends its mission in a comet | Example</title>"
    )
    body = "<article><h1>An ode to the Rosetta spacecraft as it flings itself into a comet</h1>"
    got = extract(page(head, body + PARAGRAPH + "</article>"))
    assert got.title == "An ode to the Rosetta spacecraft as it flings itself into a comet"  # type: ignore[attr-defined]


def test_title_drops_a_bracketed_tail_the_h1_lacks() -> None:
    head = meta("og:title", "Haley to resign as ambassador (Published 2018)")
    got = extract(page(head, "<h1>Haley to resign as ambassador</h1>"))
    assert got.title == "Haley to resign as ambassador"  # type: ignore[attr-defined]


def test_title_uses_the_h1_the_metadata_confirm_not_the_logo() -> None:
    head = meta("og:title", "Storm hits the coast。 | 株式会社") + meta("og:site_name", "Example")
    body = "<h1>Example</h1><h1>News releases</h1><h1>Storm hits the coast</h1>"
    assert extract(page(head, body)).title == "Storm hits the coast"  # type: ignore[attr-defined]


def test_title_from_a_page_of_many_huge_headings_is_still_the_headline() -> None:
    head = meta("og:title", "Storm hits the coast") + meta("twitter:title", "x " * 1_000_000)
    headings = "<h1>Menu</h1>" * 20_000 + "<h1>" + "word " * 200_000 + "</h1>"
    got = extract(page(head, headings + "<article><h1>Storm hits the east coast again</h1>"))
    assert got.title == "Storm hits the east coast again"  # type: ignore[attr-defined]


def test_a_page_url_urllib_cannot_parse_gives_no_links_and_no_crash() -> None:
    head = meta("og:title", "Storm") + meta("og:image", "//cdn.example/a.jpg")
    got = extract(page(head + '<link rel="canonical" href="//a.example/x">'), url="//[")
    assert (got.title, got.images, got.canonical_url) == ("Storm", (), None)  # type: ignore[attr-defined]


def test_a_page_date_past_year_9999_in_utc_is_skipped() -> None:
    head = meta("og:title", "T") + meta("article:published_time", "9999-12-31T23:59:59-23:59")
    head += meta("date", "2024-05-01T10:00:00Z", "name")
    assert extract(page(head)).published == datetime(2024, 5, 1, 10, tzinfo=UTC)  # type: ignore[attr-defined]


def test_title_strips_the_domain_when_the_site_name_is_unknown() -> None:
    assert extract(page("<title>Storm hits coast | Example</title>")).title == "Storm hits coast"  # type: ignore[attr-defined]


def test_jsonld_headline_unrelated_to_title_and_h1_is_skipped() -> None:
    head = jsonld({**ARTICLE, "headline": "a short description"}) + "<title>New Zealand</title>"
    assert extract(page(head)).title == "New Zealand"  # type: ignore[attr-defined]


# --- excerpt -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        (meta("og:description", "OG desc") + meta("description", "Meta", "name"), "", "OG desc"),
        (meta("description", "Meta &lt;b&gt;desc&lt;/b&gt;", "name"), "", "Meta desc"),
        (jsonld({**ARTICLE, "description": "LD desc"}), "", "LD desc"),
        (
            "",
            "<div class='cookie-banner'><p>We use cookies to improve your experience on this site, "
            "please accept them all now.</p></div><p>Short line.</p>" + PARAGRAPH + "</p>",
            PARAGRAPH[3:].strip(),
        ),
        ("", "<nav><p>" + "Menu item words " * 10 + "</p></nav>", None),
    ],
)
def test_excerpt_chain(head: str, body: str, expected: str | None) -> None:
    assert extract(page(head, body)).excerpt == expected  # type: ignore[attr-defined]


# --- published -----------------------------------------------------------------------

PUBLISHED_CASES = [
    (meta("article:published_time", "2020-02-05T10:00:00+01:00"), "", URL, "2020-02-05T09:00:00"),
    (jsonld({**ARTICLE, "datePublished": "2020-02-06T10:00:00Z"}), "", URL, "2020-02-06T10:00:00"),
    (
        "",
        '<article><time datetime="2020-02-07T08:00:00Z">x</time></article>',
        URL,
        "2020-02-07T08:00:00",
    ),
    (
        "",
        '<time datetime="2019-01-01T00:00:00Z">sidebar</time>'
        '<article><time datetime="2020-02-08T08:00:00Z">x</time></article>',
        URL,
        "2020-02-08T08:00:00",
    ),
    ("", '<time pubdate datetime="2020-02-09">x</time>', URL, "2020-02-09T00:00:00"),
    (meta("sailthru.date", "2020-02-10 11:12:13", "name"), "", URL, "2020-02-10T11:12:13"),
    (meta("parsely-pub-date", "2020-02-11T00:00:00Z", "name"), "", URL, "2020-02-11T00:00:00"),
    (meta("dc.date", "2020-02-12", "name"), "", URL, "2020-02-12T00:00:00"),
    (
        "",
        '<span itemprop="datePublished" content="2020-02-13T01:02:03Z"></span>',
        URL,
        "2020-02-13T01:02:03",
    ),
    ("", "", "https://x.com/2020/02/14/story", "2020-02-14T00:00:00"),
    ("", "", "https://x.com/news/2020-02-15-story", "2020-02-15T00:00:00"),
    ("", "", "https://x.com/a/20200216/story", "2020-02-16T00:00:00"),
    ("", "<h1>Head</h1><p>Published Dec. 9, 2016 9:13 AM</p>", URL, "2016-12-09T09:13:00"),
    ("", "", URL, None),
]


@pytest.mark.parametrize(("head", "body", "url", "expected"), PUBLISHED_CASES)
def test_published_chain(head: str, body: str, url: str, expected: str | None) -> None:
    got = extract(page(head, body), url).published  # type: ignore[attr-defined]
    assert (got.strftime("%Y-%m-%dT%H:%M:%S") if got else None) == expected


def test_future_date_falls_through_to_the_next_candidate() -> None:
    head = meta("article:published_time", "2030-01-01T00:00:00Z") + jsonld(
        {**ARTICLE, "datePublished": "2024-05-01T00:00:00Z"}
    )
    assert extract(page(head)).published == datetime(2024, 5, 1, tzinfo=UTC)  # type: ignore[attr-defined]


def test_updated_time_is_not_taken_for_publication() -> None:
    body = '<article><div class="updated"><time datetime="2024-05-02T00:00:00Z">u</time></div>'
    body += '<time datetime="2024-05-01T00:00:00Z">p</time></article>'
    assert extract(page("", body)).published == datetime(2024, 5, 1, tzinfo=UTC)  # type: ignore[attr-defined]


def test_zone_less_dates_on_japanese_pages_are_japan_time() -> None:
    body = "<h1>見出し</h1><p>2019年04月04日 09:00 公開</p>"
    got = extract(page("", body, lang="ja")).published  # type: ignore[attr-defined]
    assert got == datetime(2019, 4, 4, 0, 0, tzinfo=UTC)


# --- images --------------------------------------------------------------------------


def test_og_image_with_structured_properties() -> None:
    head = (
        meta("og:image", "http://cdn.example.com/a.jpg")
        + meta("og:image:secure_url", "https://cdn.example.com/a.jpg")
        + meta("og:image:width", "1200")
        + meta("og:image:height", "630px")
        + meta("og:image:alt", "A &amp; B")
        + meta("og:image", "/b.jpg")
        + meta("twitter:image", "http://cdn.example.com/a.jpg", "name")
    )
    assert extract(page(head)).images == (  # type: ignore[attr-defined]
        Image("http://cdn.example.com/a.jpg", 1200, 630, "A & B"),
        Image("https://www.example.com/b.jpg"),
    )


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("https://e.com/1.jpg", [Image("https://e.com/1.jpg")]),
        (
            ["//e.com/1.jpg", "https://e.com/2.jpg"],
            [Image("https://e.com/1.jpg"), Image("https://e.com/2.jpg")],
        ),
        (
            {"@type": "ImageObject", "url": "img/3.jpg", "width": 800, "height": "450"},
            [Image("https://www.example.com/news/img/3.jpg", 800, 450)],
        ),
        # sizes no image has (and no store integer holds) are unknown sizes
        (
            {"@type": "ImageObject", "url": "https://e.com/4.jpg", "width": 10**25, "height": 1e30},
            [Image("https://e.com/4.jpg")],
        ),
    ],
)
def test_jsonld_image_forms(image: object, expected: list[Image]) -> None:
    html = page(jsonld({**ARTICLE, "image": image}))
    assert list(extract(html).images) == expected  # type: ignore[attr-defined]


def test_image_fallbacks_and_filters() -> None:
    head = (
        meta("og:image", "javascript:alert(1)")
        + meta("twitter:image:src", "data:image/png;base64,AAAA", "name")
        + '<base href="https://static.example.org/assets/">'
        + '<link rel="image_src" href="lead.png">'
    )
    assert extract(page(head)).images == (Image("https://static.example.org/assets/lead.png"),)  # type: ignore[attr-defined]


# --- urls, site, type, lang, text ----------------------------------------------------


def test_canonical_amp_site_type_lang() -> None:
    head = (
        '<link rel="canonical" href="/news/story">'
        '<link rel="amphtml" href="https://amp.example.com/news/story">'
        + meta("og:url", "https://other.example.com/x")
        + meta("og:type", "News Article")
        + meta("application-name", "App Name", "name")
    )
    got = extract(page(head, lang="en-GB"))
    assert got.canonical_url == "https://www.example.com/news/story"  # type: ignore[attr-defined]
    assert got.amp_url == "https://amp.example.com/news/story"  # type: ignore[attr-defined]
    assert got.type == "article"  # type: ignore[attr-defined]
    assert got.site_name == "App Name"  # type: ignore[attr-defined]
    assert got.lang == "en-GB"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("head", "canonical", "kind", "site"),
    [
        (
            meta("og:url", "https://cross.example.net/a") + meta("og:type", "VIDEO"),
            "https://cross.example.net/a",
            "video",
            None,
        ),
        (
            meta("og:site_name", "OG Site") + jsonld({**ARTICLE, "publisher": {"name": "Pub"}}),
            None,
            None,
            "OG Site",
        ),
        (jsonld({**ARTICLE, "publisher": {"name": "Pub"}}), None, None, "Pub"),
    ],
)
def test_canonical_type_site_fallbacks(
    head: str, canonical: str | None, kind: str | None, site: str | None
) -> None:
    got = extract(page(head))
    assert (got.canonical_url, got.type, got.site_name) == (canonical, kind, site)  # type: ignore[attr-defined]


def test_text_comes_from_the_article_paragraphs_and_is_bounded() -> None:
    body = (
        "<nav><p>" + "Navigation link text here. " * 5 + "</p></nav>"
        "<article>"
        + ("<p>" + "Article sentence number one goes on. " * 5 + "</p>")
        * 30
        + "</article>"
        "<footer><p>" + "Footer copyright notice text. " * 5 + "</p></footer>"
    )
    text = extract(page("", body)).text  # type: ignore[attr-defined]
    assert text.startswith("Article sentence")
    assert "Navigation" not in text and "Footer" not in text
    assert 1900 <= len(text) <= 2000


# --- documents and decoding -----------------------------------------------------------


def test_jsonld_graph_fixture() -> None:
    got = extract((PAGES / "jsonld-graph.html").read_bytes(), "https://example.com/story")
    assert got.title == "Graph headline & more"  # type: ignore[attr-defined]
    assert got.excerpt == "Graph description."  # type: ignore[attr-defined]
    assert got.published == datetime(2021, 3, 4, 4, 6, 7, tzinfo=UTC)  # type: ignore[attr-defined]
    assert got.images == (Image("https://example.com/img/lead.jpg", 1600, 900),)  # type: ignore[attr-defined]
    assert got.site_name == "Example Times"  # type: ignore[attr-defined]


def test_windows_1252_page_decoded_from_meta_charset() -> None:
    got = extract((PAGES / "windows-1252.html").read_bytes())
    assert got.title == "Café crème – « déjà vu »"  # type: ignore[attr-defined]
    assert got.excerpt is not None and "qu’à Lyon" in got.excerpt  # type: ignore[attr-defined]
    assert got.lang == "fr"  # type: ignore[attr-defined]


def test_header_charset_wins_over_meta() -> None:
    html = page('<meta charset="utf-8"><title>Ærø island</title>').encode("iso-8859-1")
    got = extract(html, headers={"Content-Type": "text/html; charset=ISO-8859-1"})
    assert got.title == "Ærø island"  # type: ignore[attr-defined]


def test_valid_utf8_wins_over_a_wrong_label() -> None:
    html = page('<meta charset="shift_jis"><title>日本語の見出し</title>').encode()
    assert extract(html).title == "日本語の見出し"  # type: ignore[attr-defined]


def test_undeclared_bytes_are_utf8_with_replacement() -> None:
    html = page("<title>caf\xe9 ok</title>").encode("latin-1")
    assert extract(html).title == "caf\ufffd ok"  # type: ignore[attr-defined]


_TRICKY_PAGES = [
    page("<title>Café “déjà” — ж</title>", "<p>naïve\x00 text</p>").encode(),
    codecs.BOM_UTF8 * 2 + page("<title>Two BOMs é</title>").encode(),
    ('<?xml version="1.0" encoding="utf-8"?>\n' + page("<title>Déclaré</title>")).encode(),
    page('<meta charset="iso-8859-1"><title>Mislabelled “utf-8”</title>').encode(),
    page('<meta charset="windows-1251"><title>Новости дня</title>').encode("windows-1251"),
    page("<title>Plain ASCII &amp; entities &eacute;</title>").encode(),
    codecs.BOM_UTF16_LE + page("<title>UTF-16 ☃</title>").encode("utf-16-le"),
]


@pytest.mark.parametrize("raw", _TRICKY_PAGES)
def test_page_parsed_from_bytes_as_libxml2_parses_the_decoded_str(raw: bytes) -> None:
    """The bytes handed to libxml2 (the page's own, or the text encoded) give the tree
    a parse of the decoded str gives, whatever the page's encoding, BOMs and labels."""
    text, utf8 = decode_html_with_utf8(raw, None)
    if utf8 is not None:
        assert utf8.decode("utf-8") == text
    page_root = parse_page(text, URL, NOW, utf8).root
    str_parser = etree.HTMLParser(huge_tree=True, remove_comments=True, remove_pis=True)
    reference = etree.fromstring(
        _XML_DECL.sub("", text, count=1).replace("\x00", ""), parser=str_parser
    )
    assert etree.tostring(page_root, encoding=str) == etree.tostring(reference, encoding=str)


def test_a_lone_surrogate_in_a_str_becomes_a_question_mark() -> None:
    got = extract(page("<title>Lone \ud800 surrogate</title>"))
    assert got.title == "Lone ? surrogate"  # type: ignore[attr-defined]


def test_decoded_text_comes_with_the_page_bytes_only_when_they_are_its_utf8() -> None:
    utf8_page = codecs.BOM_UTF8 + page("<title>é</title>").encode()
    assert decode_html_with_utf8(utf8_page, None)[1] == utf8_page[len(codecs.BOM_UTF8) :]
    latin = page('<meta charset="windows-1252"><title>caf\xe9</title>').encode("cp1252")
    assert decode_html_with_utf8(latin, None) == (latin.decode("cp1252"), None)
    ebcdic = page('<meta charset="cp037"><title>x</title>').encode()
    assert decode_html_with_utf8(ebcdic, None)[1] is None


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"   \n",
        b"%PDF-1.4\x00\x01\x02",
        '{"a": [1, 2]}',
        "just some plain text",
        '<?xml version="1.0"?><!-- c --><rss version="2.0"><channel></channel></rss>',
    ],
)
def test_non_html_raises_extract_error(document: str | bytes) -> None:
    with pytest.raises(ExtractError):
        extract(document)


@pytest.mark.parametrize(
    "document",
    [
        "<html><head><title>Broken</title><meta property='og:title' content=\"x</head>"
        "<body><p><<<>>></p>",
        "<div><p>unclosed <b>tags <i>everywhere</div></span></html></body>",
        "<html>\x00\x01<title>nul bytes</title>",
        "<p>" + "<span>" * 300 + "text",
        '<script type="application/ld+json">{not json</script><p>hi</p>',
    ],
)
def test_garbage_html_does_not_crash(document: str) -> None:
    assert extract(document).url == URL  # type: ignore[attr-defined]


def test_huge_attribute_values() -> None:
    head = meta("og:description", "a" * 12_000_000) + "<title>Still here ok</title>"
    got = extract(page(head))
    assert got.title == "Still here ok"  # type: ignore[attr-defined]
    excerpt = got.excerpt  # type: ignore[attr-defined]
    # read up to text.MAX_MARKUP_LENGTH (the record's excerpt keeps 340 characters of it)
    assert excerpt is not None and 500_000 < len(excerpt) <= MAX_MARKUP_LENGTH
    assert set(excerpt) == {"a"}


def test_deeply_nested_markup_keeps_head_metadata() -> None:
    body = "<div>" * 50_000 + "<p>deep</p>" + "</div>" * 50_000
    got = extract(page(meta("og:title", "Deep page"), body))
    assert got.title == "Deep page"  # type: ignore[attr-defined]


def test_moderately_nested_markup_keeps_paragraphs() -> None:
    body = "<div>" * 1000 + PARAGRAPH + "</p>" + "</div>" * 1000
    assert "lead of the article" in extract(page("", body)).text  # type: ignore[attr-defined]


# --- accuracy floors on the shared labeled sets ---------------------------------------

FLOORS = {"title": 0.85, "excerpt": 0.72, "date": 0.92, "image": 0.93, "site_name": 0.90}


@pytest.mark.eval
def test_accuracy_stays_above_floors(eval_dir: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "bench" / "eval_extract.py"
    spec = importlib.util.spec_from_file_location("eval_extract", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_extract"] = module
    spec.loader.exec_module(module)
    scores, _ = module.evaluate(eval_dir)
    total = module.overall(scores)
    rates = {name: hits / count for name, (hits, count) in total.items() if count}
    for name, floor in FLOORS.items():
        assert rates[name] >= floor, f"{name}: {rates[name]:.3f} < {floor}"


def test_boilerplate_is_decided_per_paragraph_whatever_its_neighbours_share() -> None:
    import lxml.html

    from aggregator.extract_body import _paragraphs

    markup = (
        "<html><body><div class='page'>"
        "<div class='share-bar'><div><p>Share one</p><p>Share two</p></div></div>"
        "<article><div class='inner'><p>Lead paragraph</p>"
        "<figure><p>Figure words</p></figure><p>Second paragraph</p>"
        "<div id='related-links'><p>Related one</p></div><p>Third paragraph</p></div>"
        "</article><div><p>Outside any marker</p></div>"
        "<nav><div class='share'><p>Menu words</p></div></nav></div></body></html>"
    )
    root = lxml.html.document_fromstring(markup)
    kept = [text for _, text in _paragraphs(root)]
    assert kept == ["Lead paragraph", "Second paragraph", "Third paragraph", "Outside any marker"]


def _plain_unwrapped(block: str) -> str:
    """`extract_jsonld._unwrapped` as it was: the wrapper pattern run over every block."""
    from aggregator.extract_jsonld import _WRAPPER

    return _WRAPPER.sub("", block.strip()).strip().rstrip(";")


_BLOCK_PIECES = st.sampled_from(
    [
        '{"@type": "NewsArticle"}',
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "//",
        "// ]]>",
        "<!x",
        ";",
        " ",
        "\n",
        "\x01",
        '"',
        "{",
        "}",
        "[1]",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(_BLOCK_PIECES, st.text(max_size=5)), max_size=8).map("".join))
@example('{"@type": "NewsArticle"}]]>')  # each wrapper alone
@example('{"@type": "NewsArticle"} -->')
@example('<!-- {"@type": "NewsArticle"}')
@example('//<![CDATA[\n{"@type": "NewsArticle"}\n//]]>;')
def test_json_ld_blocks_read_as_with_the_wrapper_pattern_alone(block: str) -> None:
    from aggregator.extract_jsonld import _unwrapped

    assert _unwrapped(block) == _plain_unwrapped(block)
    assert _unwrapped(f"<!--\n{block}\n-->") == _plain_unwrapped(f"<!--\n{block}\n-->")
