"""Page extraction: article HTML → `PageMetadata`, one fallback chain per field.

    decode (Content-Type charset → <meta charset> → utf-8)
      → parse once with libxml2 (lxml) and index meta / link / JSON-LD
      → title     <title> confirmed by <h1> or JSON-LD, else declared (dc, parsely) →
                  og:title → twitter:title → JSON-LD headline → <title> → <h1>, then the
                  <h1> when it retells it (docs/accuracy.md)
      → excerpt   og:description → meta description → twitter/JSON-LD description → 1st paragraph
      → published article:published_time → JSON-LD → <time> → meta names → itemprop → URL
      → images    og:image → JSON-LD image → twitter:image → link rel=image_src
      → canonical, amphtml, site name, og:type, lang, body text

Only the `aggregator.extract*` modules touch parsed markup; nothing they return holds a
parser type. The document is parsed with lxml rather than a BeautifulSoup tree: it is the
same libxml2 parser, about fifteen times faster without the Python tree on top
(BeautifulSoup's encoding sniffer is still used to read `<meta charset>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from aggregator.extract_body import body_text, find_h1, first_real_paragraph, main_paragraphs
from aggregator.extract_dates import find_published
from aggregator.extract_doc import Page, decode_html_with_utf8, parse_page
from aggregator.extract_images import find_images
from aggregator.extract_jsonld import article_objects, first_string, publisher_name
from aggregator.models import PageMetadata
from aggregator.normalize import provider_domain
from aggregator.text import clean_inline, html_to_text
from aggregator.titles import (
    confirmed_h1,
    prefer_reference,
    prefer_visible_headline,
    strip_short_suffix,
    strip_site_name,
)

_WORD = re.compile(r"\w{2,}")
_OTHER_TITLE_META = ("dc.title", "dc:title", "dcterms.title", "parsely-title", "sailthru.title")
_ARTICLE_TYPES = frozenset({"article", "news article", "newsarticle", "news_article"})


def extract_page(
    html: bytes | str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PageMetadata:
    """Extract the metadata of the article page `html` fetched from `url`.

    Fields the page does not carry are None. Raises `ExtractError` only when the document
    is not HTML at all (empty, binary, JSON, a feed, plain text).
    """
    text, utf8 = decode_html_with_utf8(html, headers)
    page = parse_page(text, url, now or datetime.now(UTC), utf8)
    paragraphs = main_paragraphs(page.root)
    site_name = _find_site_name(page)
    return PageMetadata(
        url=url,
        title=_find_title(page, site_name),
        excerpt=_find_excerpt(page) or first_real_paragraph(paragraphs),
        published=find_published(page),
        images=find_images(page),
        canonical_url=_find_canonical(page),
        amp_url=page.absolute(_first(page.links.get("amphtml"))),
        site_name=site_name,
        type=_find_type(page),
        text=body_text(paragraphs),
        lang=_find_lang(page),
    )


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _find_title(page: Page, site_name: str | None) -> str | None:
    domain = provider_domain(page.url) or None
    document_title = _document_title(page, site_name, domain)
    articles = article_objects(page.jsonld)
    social = page.first_meta("og:title"), page.first_meta("twitter:title")
    declared = page.first_meta(*_OTHER_TITLE_META)
    raw_headline = first_string(articles, "headline") or first_string(articles, "name")
    metadata = (declared, *social, raw_headline, page.title_text)
    first_h1, h1s = find_h1(page.root)
    h1 = confirmed_h1(h1s, first_h1, metadata, site_name, domain)
    headline = _confirmed_headline(raw_headline, (document_title, h1))
    for confirmed in (h1, headline):  # two sources of the page agree on it
        if confirmed and document_title and _same(confirmed, document_title):
            return clean_inline(confirmed)
    # Declared article titles (Dublin Core, analytics) before the social ones.
    candidates = (declared, *social, headline, document_title, h1)
    usable = [c for c in candidates if c and clean_inline(c)]
    # A candidate that is only the site name is a last resort, not a headline.
    ranked = [c for c in usable if not _is_only_site_name(c, site_name)] or usable
    if not ranked:
        return None
    title = prefer_reference(strip_site_name(ranked[0], site_name, domain), (h1, document_title))
    return prefer_visible_headline(title, h1, metadata, (site_name or "", domain or ""))


def _same(title: str, other: str) -> bool:
    return clean_inline(title).casefold() == clean_inline(other).casefold()


def _document_title(page: Page, site_name: str | None, domain: str | None) -> str | None:
    """`<title>` without its site name, or without a short unknown tail."""
    raw = clean_inline(page.title_text or "")
    title = strip_site_name(raw, site_name, domain)
    return (strip_short_suffix(title) if title == raw else title) or None


def _confirmed_headline(headline: str | None, references: tuple[str | None, ...]) -> str | None:
    """The JSON-LD headline, unless most of its words are in neither `<title>` nor `<h1>`."""
    known = [ref for ref in references if ref]
    if not headline or not known:
        return headline
    words = set(_WORD.findall(headline.casefold()))
    for ref in known:
        if len(words & set(_WORD.findall(ref.casefold()))) * 2 >= len(words):
            return headline
    return None


def _is_only_site_name(title: str, site_name: str | None) -> bool:
    return site_name is not None and clean_inline(title).casefold() == site_name.casefold()


def _find_excerpt(page: Page) -> str | None:
    candidates = (
        page.first_meta("og:description"),
        page.first_meta("description"),
        page.first_meta("twitter:description"),
        first_string(article_objects(page.jsonld), "description"),
    )
    for candidate in candidates:
        text = html_to_text(candidate) if candidate else ""
        if text:
            return text
    return None


def _find_site_name(page: Page) -> str | None:
    candidates = (
        page.first_meta("og:site_name"),
        publisher_name(page.jsonld),
        page.first_meta("application-name"),
    )
    for candidate in candidates:
        name = clean_inline(candidate) if candidate else ""
        if name:
            return name
    return None


def _find_canonical(page: Page) -> str | None:
    canonical = page.absolute(_first(page.links.get("canonical")))
    return canonical or page.absolute(page.first_meta("og:url"))


def _find_type(page: Page) -> str | None:
    raw = clean_inline(page.first_meta("og:type") or "").lower()
    if not raw:
        return None
    return "article" if raw in _ARTICLE_TYPES else raw


def _find_lang(page: Page) -> str | None:
    raw = page.root.get("lang") or page.root.get("xml:lang") or page.first_meta("content-language")
    lang = (raw or "").strip().replace("_", "-")
    return lang or None
