"""Turning page bytes into one parsed, indexed document for the extraction chains.

Private to `aggregator.extract`: the lxml elements held here never leave the extract
modules. Parsing is done once with libxml2's HTML parser (the parser BeautifulSoup would
drive anyway, without building a second Python tree), and every head-level fact the chains
read (meta tags, links, JSON-LD) is indexed in a single pass over the relevant elements.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from bs4.dammit import EncodingDetector
from lxml import etree

from aggregator.errors import ExtractError
from aggregator.extract_jsonld import parse_jsonld_blocks
from aggregator.normalize import urljoin_fast

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_HTML_HINT = re.compile(
    r"<(?:!doctype\s+html|html|head|body|meta|title|div|p|a|span|script|link|article|main|"
    r"section|h[1-6]|img|table|br|ul|li|form|iframe|style|noscript|header|nav)[\s>/]",
    re.IGNORECASE,
)
_FEED_ROOT = re.compile(r"<(?:rss|feed|rdf:RDF)\b")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
# Web content labelled as these is windows-1252 in practice (WHATWG Encoding Standard).
_LATIN1_ALIASES = frozenset({"iso-8859-1", "iso8859-1", "latin-1", "latin1", "ascii", "us-ascii"})
_SNIFF_BYTES = 200_000
_MAX_NULS = 8
_INDEXED_TAGS = ("meta", "link", "script", "base", "title")
# etree's parser, not lxml.html's: the same libxml2 parse, without looking up a Python
# element class for every element touched (~6% of an extraction). It reads UTF-8 bytes;
# the declared encoding wins over the document's <meta charset>.
_PARSER = etree.HTMLParser(encoding="utf-8", huge_tree=True, remove_comments=True, remove_pis=True)


@dataclass(slots=True)
class Page:
    """A parsed page and the indexes every chain reads."""

    root: etree._Element
    url: str
    base_url: str
    now: datetime
    meta: dict[str, list[str]] = field(default_factory=dict)
    meta_order: list[tuple[str, str]] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=dict)
    jsonld: list[dict[str, object]] = field(default_factory=list)
    title_text: str | None = None

    def first_meta(self, *keys: str) -> str | None:
        """The first non-empty content of the first of `keys` present (keys lowercase)."""
        for key in keys:
            for value in self.meta.get(key, ()):
                if value.strip():
                    return value
        return None

    def absolute(self, href: str | None) -> str | None:
        """`href` joined with the base URL; None unless the result is http(s)."""
        if not href:
            return None
        href = href.strip()
        try:
            if href.startswith("//"):
                href = f"{urlsplit(self.base_url).scheme or 'https'}:{href}"
            joined = urljoin_fast(self.base_url, href)
            parts = urlsplit(joined)
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return joined


def text_of(element: etree._Element) -> str:
    """All the text inside `element` (what lxml.html's ``text_content`` returns)."""
    return "".join(t for t in element.itertext() if isinstance(t, str))


def decode_html(html: bytes | str, headers: Mapping[str, str] | None) -> str:
    """Decode page bytes: BOM, then Content-Type charset, then `<meta charset>`, then utf-8.

    Bytes that are valid UTF-8 and not plain ASCII are read as UTF-8 whatever the labels
    say: mislabelled pages are common, while legacy-encoded text is almost never valid UTF-8.
    """
    return decode_html_with_utf8(html, headers)[0]


def decode_html_with_utf8(
    html: bytes | str, headers: Mapping[str, str] | None
) -> tuple[str, bytes | None]:
    """`decode_html`, and the same text as UTF-8 bytes when those are `html` itself (its
    leading byte order marks cut off), else None: bytes `parse_page` need not encode."""
    if isinstance(html, str):
        return html, None
    if not html.isascii():
        try:
            text = html.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            while html.startswith(codecs.BOM_UTF8):
                html = html[len(codecs.BOM_UTF8) :]
            return text.lstrip("\ufeff"), html
        return _decode_labelled(html, headers), None
    text = _decode_labelled(html, headers)
    # a label may name a codec that reads ASCII bytes as other characters (EBCDIC, UTF-7)
    return text, html if text.isascii() and text == html.decode("ascii") else None


def _decode_labelled(html: bytes, headers: Mapping[str, str] | None) -> str:
    """Bytes that are not UTF-8 (or plain ASCII), decoded by their BOM or labels."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16")):
        if html.startswith(bom):
            return html.decode(name, errors="replace").lstrip("\ufeff")
    if html.startswith(codecs.BOM_UTF16_BE):
        return html.decode("utf-16", errors="replace").lstrip("\ufeff")
    for declared in (_header_charset(headers), _meta_charset(html)):
        codec = _usable_codec(declared)
        if codec:
            return html.decode(codec, errors="replace")
    return html.decode("utf-8", errors="replace")


def _header_charset(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == "content-type":
            match = _CHARSET.search(value)
            return match.group(1) if match else None
    return None


def _meta_charset(html: bytes) -> str | None:
    found = EncodingDetector.find_declared_encoding(html[:_SNIFF_BYTES], is_html=True)
    return str(found) if found else None


def _usable_codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().lower()
    if name in _LATIN1_ALIASES:
        return "windows-1252"
    if name.startswith("utf-16"):
        return None  # a utf-16 document would have a BOM; the label is almost always wrong
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def parse_page(text: str, url: str, now: datetime, utf8: bytes | None = None) -> Page:
    """Parse decoded HTML into an indexed `Page`; `ExtractError` when it is not HTML.

    libxml2 reads the document as UTF-8 bytes, in three quarters of the time it takes on
    a str: `utf8`, when given, is `text` already encoded (`decode_html_with_utf8`)."""
    if not _looks_like_html(text):
        raise ExtractError(url, "document is not HTML")
    markup = _utf8_markup(text, utf8)
    try:
        root = etree.fromstring(markup.replace(b"\x00", b""), parser=_PARSER)
    except (etree.LxmlError, ValueError) as exc:
        raise ExtractError(url, f"unparseable HTML: {exc}") from exc
    if root is None:
        raise ExtractError(url, "unparseable HTML: the document is empty")
    page = Page(root=root, url=url, base_url=url, now=now)
    _index(page)
    return page


def _utf8_markup(text: str, utf8: bytes | None) -> bytes:
    """`text` as UTF-8 bytes (`utf8` when given) without the XML declaration it may start
    with. A lone surrogate, which only a str handed in can hold, becomes "?"."""
    if utf8 is None:
        utf8 = text.encode("utf-8", errors="replace")
    declaration = _XML_DECL.match(text)
    if declaration is None:
        return utf8
    return utf8[len(declaration.group().encode("utf-8", errors="replace")) :]


def _looks_like_html(text: str) -> bool:
    head = text[:_SNIFF_BYTES]
    if not head.strip() or head[:1024].count("\x00") > _MAX_NULS:
        return False
    if _is_feed(head):
        return False
    return _HTML_HINT.search(head) is not None


def _is_feed(head: str) -> bool:
    """True when the root element (after an XML declaration and comments) is a feed's."""
    rest = _XML_DECL.sub("", head, count=1).lstrip()
    while rest.startswith("<!--"):
        end = rest.find("-->")
        if end < 0:
            return False
        rest = rest[end + 3 :].lstrip()
    return _FEED_ROOT.match(rest) is not None


def _index(page: Page) -> None:
    scripts: list[str] = []
    for element in page.root.iter(*_INDEXED_TAGS):
        tag = element.tag
        if tag == "meta":
            _index_meta(page, element)
        elif tag == "link":
            _index_link(page, element)
        elif tag == "script":
            if "ld+json" in (element.get("type") or "").lower():
                scripts.append(element.text or "")
        elif tag == "base":
            base = page.absolute(element.get("href"))
            if base and page.base_url == page.url:
                page.base_url = base
        elif tag == "title" and page.title_text is None and _in_head_or_top(element):
            page.title_text = text_of(element)
    page.jsonld = parse_jsonld_blocks(scripts)


def _in_head_or_top(element: etree._Element) -> bool:
    """A `<title>` inside an inline SVG or the body is not the document title."""
    parent = element.getparent()
    return parent is None or parent.tag in ("head", "html")


def _index_meta(page: Page, element: etree._Element) -> None:
    content = element.get("content")
    if content is None:
        content = element.get("value")
    if content is None:
        return
    for attr in ("property", "name", "itemprop", "http-equiv"):
        key = element.get(attr)
        if key:
            for single in key.lower().split():
                page.meta.setdefault(single, []).append(content)
                page.meta_order.append((single, content))


def _index_link(page: Page, element: etree._Element) -> None:
    href = element.get("href")
    rel = element.get("rel")
    if not href or not rel:
        return
    for single in rel.lower().split():
        page.links.setdefault(single, []).append(href)
