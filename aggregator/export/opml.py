"""OPML 2.0 in and out: feed lists as plain values, parsed safely and written with lxml.

    parse_opml(data)          bytes → OpmlDocument(feeds, problems); ParseError if not OPML
    render_opml(feeds, now)   OpmlFeeds → OPML 2.0 bytes, one folder outline per category

Parsing never resolves external entities and never touches the network
(``resolve_entities=False, no_network=True``, no DTD loading), and a document that declares
entities at all is refused. Folders (outlines without ``xmlUrl``) nest to any depth;
a feed's category is its ``category`` attribute, else the nearest folder's name, else
"news". A bad outline (no or non-http(s) ``xmlUrl``, duplicate name) becomes an
`OpmlProblem` naming the outline and its line; the other outlines are still read.
The aggregator's own fields (``type``, ``pages``) travel as namespaced attributes, so an
export re-imports to the same sources.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, cast
from urllib.parse import urlsplit

from lxml import etree

from aggregator.errors import ParseError
from aggregator.normalize import escape_url_controls
from aggregator.text import strip_unsafe_chars

NS = "https://github.com/aggregator/aggregator/opml"
DEFAULT_CATEGORY = "news"
NAME_MAX = 200
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed outline."""

    name: str
    url: str
    category: str = DEFAULT_CATEGORY
    type: str = "article"
    pages: bool = True


@dataclass(frozen=True, slots=True)
class OpmlProblem:
    """Why one outline was skipped; `where` names it (``outline #3, line 12 "Foo"``)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class OpmlDocument:
    """The feeds read from an OPML file, and the outlines that were skipped."""

    feeds: tuple[OpmlFeed, ...]
    problems: tuple[OpmlProblem, ...]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_opml(data: bytes, *, origin: str = "<opml>") -> OpmlDocument:
    """Read the feeds of an OPML document; raise ParseError when it is not OPML at all."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise ParseError(origin, f"not well-formed XML: {exc}") from exc
    dtd = root.getroottree().docinfo.internalDTD if root is not None else None
    if dtd is not None and any(True for _ in cast(Any, dtd).iterentities()):
        raise ParseError(origin, "entity declarations are not allowed in OPML")
    if root is None or not isinstance(root.tag, str) or etree.QName(root).localname != "opml":
        raise ParseError(origin, "not an OPML document (the root element is not <opml>)")
    body = next((c for c in root if _is(c, "body")), None)
    if body is None:
        raise ParseError(origin, "OPML document has no <body>")
    return _Reader().read(body)


def _is(element: etree._Element, name: str) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).localname == name


def clean_text(value: str | None) -> str:
    """`value` with XML-illegal characters dropped, whitespace collapsed, and the
    characters `strip_unsafe_chars` drops (C1 controls, bidi overrides: an imported
    source's name or category could spoof what the tables show) dropped too."""
    return strip_unsafe_chars(_SPACES.sub(" ", _NOT_XML.sub("", value or ""))).strip()


def is_http_url(value: str) -> bool:
    """Whether `value` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


class _Reader:
    """Walks the outlines once, in document order, collecting feeds and problems."""

    def __init__(self) -> None:
        self.feeds: dict[str, OpmlFeed] = {}
        self.first_seen: dict[str, int] = {}
        self.problems: list[OpmlProblem] = []
        self.count = 0

    def read(self, body: etree._Element) -> OpmlDocument:
        for outline, folders in _walk(body, ()):
            self.count += 1
            self._outline(outline, folders)
        return OpmlDocument(tuple(self.feeds.values()), tuple(self.problems))

    def _outline(self, outline: etree._Element, folders: tuple[str, ...]) -> None:
        raw_url = _attr(outline, "xmlUrl")
        name = clean_text(_attr(outline, "title") or _attr(outline, "text"))
        where = f"outline #{self.count} (line {outline.sourceline})"
        where += f' "{name[:60]}"' if name else ""
        if raw_url is None:
            if len(outline) == 0 and (_attr(outline, "htmlUrl") or _attr(outline, "type")):
                self.problems.append(OpmlProblem(where, "no xmlUrl; skipped"))
            return
        url = escape_url_controls(_NOT_XML.sub("", raw_url).strip())
        if not is_http_url(url):
            message = f"xmlUrl {url[:200]!r} is not an http(s) URL; skipped"
            self.problems.append(OpmlProblem(where, message))
            return
        name = (name or urlsplit(url).hostname or url)[:NAME_MAX]
        if name in self.feeds:
            message = f"duplicate name (already used by outline #{self.first_seen[name]}); skipped"
            self.problems.append(OpmlProblem(where, message))
            return
        self.first_seen[name] = self.count
        self.feeds[name] = _feed(outline, name, url, folders)


def _walk(
    parent: etree._Element, folders: tuple[str, ...]
) -> Iterator[tuple[etree._Element, tuple[str, ...]]]:
    """Every outline under `parent` in document order, with the names of its folders."""
    for child in parent:
        if not _is(child, "outline"):
            continue
        yield child, folders
        if len(child) and _attr(child, "xmlUrl") is None:
            folder = clean_text(_attr(child, "text") or _attr(child, "title"))
            yield from _walk(child, (*folders, folder) if folder else folders)


def _attr(element: etree._Element, name: str) -> str | None:
    """An attribute by name, accepting the all-lowercase spelling some exporters use."""
    value = element.get(name)
    return value if value is not None else element.get(name.lower())


def _feed(outline: etree._Element, name: str, url: str, folders: tuple[str, ...]) -> OpmlFeed:
    category = _category_attr(_attr(outline, "category")) or (folders[-1] if folders else "")
    kind = clean_text(outline.get(f"{{{NS}}}type")) or "article"
    pages = clean_text(outline.get(f"{{{NS}}}pages")).lower() not in ("false", "0", "no")
    return OpmlFeed(name, url, category or DEFAULT_CATEGORY, kind, pages)


def _category_attr(value: str | None) -> str:
    """The last segment of the first path of an OPML ``category`` attribute ("/a/b,/c" → b)."""
    first = (value or "").split(",")[0]
    segments = [clean_text(part) for part in first.split("/")]
    return next((s for s in reversed(segments) if s), "")


def render_opml(
    feeds: Sequence[OpmlFeed], *, now: datetime, title: str = "aggregator sources"
) -> bytes:
    """An OPML 2.0 document of `feeds`: one folder outline per category, in first-seen order."""
    root = etree.Element("opml", {"version": "2.0"}, nsmap={"aggregator": NS})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = clean_text(title)
    etree.SubElement(head, "dateCreated").text = format_datetime(now.astimezone(UTC), usegmt=True)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    folders: dict[str, etree._Element] = {}
    for feed in feeds:
        category = clean_text(feed.category) or DEFAULT_CATEGORY
        folder = folders.get(category)
        if folder is None:
            folder = etree.SubElement(body, "outline", {"text": category, "title": category})
            folders[category] = folder
        name = clean_text(feed.name)
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": clean_text(feed.url)}
        outline = etree.SubElement(folder, "outline", attrs)
        outline.set(f"{{{NS}}}type", clean_text(feed.type))
        outline.set(f"{{{NS}}}pages", "true" if feed.pages else "false")
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True))
