"""The publication-date chain of page extraction.

Candidates are gathered in order of trust; `first_plausible` picks the first one that
parses and is not in the future beyond the clock skew, so a bogus future date falls
through to the next candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

from lxml import etree

from aggregator.dates import first_plausible, parse_date_text, parse_datetime
from aggregator.extract_doc import Page, text_of
from aggregator.extract_jsonld import article_objects, first_string

_PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "article:published",
    "published_time",
)
_COMMON_META = (
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "published-date",
    "date",
    "dc.date",
    "dc.date.issued",
    "dc.date.created",
    "dcterms.created",
    "dcterms.issued",
    "dcterms.date",
    "sailthru.date",
    "parsely-pub-date",
    "og:pubdate",
    "article.published",
    "article_date_original",
    "original-publish-date",
    "cxenseparse:recs:publishtime",
    "datepublished",
    "release_date",
    "displaydate",
    "timestamp",
    "dc.date.available",
    "citation_publication_date",
    "citation_date",
    "published",
    "publication_date",
    "date_published",
)
_DATE_ATTRIBUTES = (
    "data-published",
    "data-published-date",
    "data-publish-date",
    "data-pubdate",
    "data-date-published",
    "data-article-published",
)
_DATED_CLASS = re.compile(
    r"publish|pub-?date|dateline|posted|post-?date|entry-date|article-?date|story-?date|"
    r"byline|timestamp|(?:^|[\s_-])date(?:$|[\s_-])",
    re.IGNORECASE,
)
_NOT_PUBLISHED = re.compile(r"updat|modif|recirc|related|comment|expir", re.IGNORECASE)
_MAX_DATED_ELEMENTS = 8
_HAS_ZONE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|\b(?:GMT|UTC|[ECMP][SD]T))\s*$", re.IGNORECASE)
_LANG_OFFSETS = {"ja": timedelta(hours=9), "ko": timedelta(hours=9), "zh": timedelta(hours=8)}
_LEAD_CHARS = 3000
_BEFORE_H1 = 300
_URL_DATE = re.compile(
    r"/((?:19|20)\d{2})[/-](0[1-9]|1[0-2])[/-](0[1-9]|[12]\d|3[01])(?:/|-|\.|$|[^\d])"
    r"|/((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?:/|[^\d]|$)"
)
_ARTICLE_ANCESTORS = frozenset({"article", "header", "main"})


def find_published(page: Page) -> datetime | None:
    """The first plausible publication date of the page, as UTC.

    Candidates are produced lazily, so the costly last resorts only run when needed.
    """
    offset = _local_offset(page)
    for candidate in _candidates(page, offset):
        found = first_plausible([candidate], page.now)
        if found is not None:
            return found
    return None


def _local_offset(page: Page) -> timedelta:
    """UTC offset assumed for zone-less dates: the page language's country, when it has one
    time zone (Japanese, Korean, Chinese); UTC otherwise."""
    lang = (page.root.get("lang") or page.first_meta("content-language") or "").lower()
    return _LANG_OFFSETS.get(lang[:2], timedelta(0))


def _candidates(page: Page, offset: timedelta) -> Iterator[datetime | None]:
    for key in _PUBLISHED_META:
        yield from _parsed(page.meta.get(key, ()), offset)
    yield _parse(first_string(article_objects(page.jsonld), "datePublished"), offset)
    yield from (_parse(value, offset) for value in _time_values(page.root))
    for key in _COMMON_META:
        yield from _parsed(page.meta.get(key, ()), offset)
    yield from (_parse(value, offset) for value in _itemprop_values(page.root))
    yield from (_parse(value, offset) for value in _attribute_values(page.root))
    yield from (_parse(value, offset) for value in _dated_texts(page.root))
    from_url = date_from_url(page.url)
    yield from_url - offset if from_url else None
    yield parse_date_text(lead_text(page.root), limit=_LEAD_CHARS, offset=offset)


def _parsed(values: list[str] | tuple[()], offset: timedelta) -> Iterator[datetime | None]:
    for value in values:
        yield _parse(value, offset)


def _parse(text: str | None, offset: timedelta) -> datetime | None:
    """A date from an attribute or short text; zone-less values are local at `offset`."""
    if not text:
        return None
    value = parse_datetime(text)
    if value is None:
        return parse_date_text(text, offset=offset)
    return value if _HAS_ZONE.search(text) else value - offset


def _time_values(root: etree._Element) -> Iterator[str]:
    """`<time datetime>`: marked as publication first, then in the article, then any."""
    marked: list[str] = []
    in_article: list[str] = []
    others: list[str] = []
    for element in root.iter("time"):
        value = element.get("datetime")
        if not value or _marked_not_published(element):
            continue
        if element.get("pubdate") is not None or _is_date_published(element):
            marked.append(value)
        elif any(a.tag in _ARTICLE_ANCESTORS for a in element.iterancestors()):
            in_article.append(value)
        else:
            others.append(value)
    yield from (*marked, *in_article, *others[:1])


def _marked_not_published(element: etree._Element) -> bool:
    """True when the element or its near ancestors are labelled as updates or related items."""
    for depth, node in enumerate((element, *element.iterancestors())):
        if depth > 3:
            break
        if _NOT_PUBLISHED.search(f"{node.get('class', '')} {node.get('id', '')}"):
            return True
    return False


def _attribute_values(root: etree._Element) -> Iterator[str]:
    """Values of data-published-style attributes, on any element."""
    xpath = " | ".join(f"//*[@{name}]" for name in _DATE_ATTRIBUTES)
    found = root.xpath(xpath)
    for element in found if isinstance(found, list) else []:
        if not isinstance(element, etree._Element):
            continue
        for name in _DATE_ATTRIBUTES:
            value = element.get(name)
            if value:
                yield value


def _dated_texts(root: etree._Element) -> Iterator[str]:
    """Short texts of elements whose class says they hold the publication date."""
    seen = 0
    for element in root.iterfind(".//*[@class]"):
        marker = element.get("class", "")
        if not _DATED_CLASS.search(marker) or _NOT_PUBLISHED.search(marker):
            continue
        text = element.get("datetime") or text_of(element)
        if len(text) <= 200 and any(ch.isdigit() for ch in text):
            yield text
            seen += 1
            if seen >= _MAX_DATED_ELEMENTS:
                return


def lead_text(root: etree._Element) -> str:
    """The visible text around the headline: from just before the first `<h1>` on."""
    body = root.find("body")
    if body is None:
        return ""
    text = " ".join(text_of(body).split())
    h1 = next(root.iter("h1"), None)
    heading = " ".join(text_of(h1).split()) if h1 is not None else ""
    start = text.find(heading) if heading else -1
    return text[max(start - _BEFORE_H1, 0) :] if start >= 0 else text


def _is_date_published(element: etree._Element) -> bool:
    return (element.get("itemprop") or "").lower() == "datepublished"


def _itemprop_values(root: etree._Element) -> Iterator[str]:
    for element in root.iterfind(".//*[@itemprop]"):
        if _is_date_published(element):
            value = element.get("content") or element.get("datetime") or text_of(element)
            if value:
                yield value


def date_from_url(url: str) -> datetime | None:
    """A date spelled in the URL path: /2020/02/05/, /2020-02-05/ or /20200205/."""
    match = _URL_DATE.search(url)
    if not match:
        return None
    groups = [g for g in match.groups() if g]
    try:
        return datetime(int(groups[0]), int(groups[1]), int(groups[2]))
    except ValueError:
        return None
