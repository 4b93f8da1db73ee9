"""Feed bytes → `ParsedFeed`: RSS 0.9x/1.0/2.0, RDF, Atom 0.3/1.0 and JSON Feed 1.0/1.1.

The single entry point for feed parsing, and the only module that imports feedparser; its
dicts (or the fast path's identical ones) are turned into frozen `RawEntry` values here.

    bytes ─┬─ starts with "{" ──────────────────────────────→ json → RawEntry…
           └─ decode (BOM, valid UTF-8, declared charset, cp1252)
              → refuse HTML → defuse DTD entities → cap entries
              → feeds_fast (lxml) ─┬─ sure ────────────────→ dicts → RawEntry…
                                   └─ "don't know" → feedparser → dicts → RawEntry…

We decode, not feedparser: valid UTF-8 is read as UTF-8 whatever the declaration says (as
miniflux does). The DOCTYPE is rebuilt with short literal entities only, so neither expat nor
feedparser's loose fallback can expand an entity bomb, and external entities never reach them.

`aggregator.feeds_fast` replays what feedparser would store for common well-formed RSS and
Atom 1.0 documents about five times faster; it answers None for anything it does not
reproduce exactly (DOCTYPE, malformed XML, xml:base below the root, xhtml content, rare
elements…), and feedparser, the reference, parses those. Both feed the same mapping below.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import io
import json
import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

import feedparser

from aggregator import feeds_fast
from aggregator.dates import parse_datetime
from aggregator.errors import ParseError
from aggregator.models import FeedHints, Image, ParsedFeed, RawEntry, image_side
from aggregator.normalize import escape_url_controls, join_url
from aggregator.prefilter import may_hold_ignoring_case
from aggregator.text import clean_inline, html_to_text

log = logging.getLogger(__name__)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
# A comment's body cannot hold "-->": with ".*?" a comment could also end at any later
# "-->", and a feed opening with 30 comments took minutes to tell from an HTML page.
_HTML_START = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--(?:[^-]|-(?!->))*-->\s*)*<(?:!doctype\s+html|html)\b",
    re.I,
)
_HTML_TAG = re.compile(r"<(?:html|head|body)\b", re.I)
_PROLOG_ITEM = re.compile(
    r"\s+|<\?.*?\?>|<!--.*?-->"
    r"|<!DOCTYPE\b(?:\"[^\"]*\"|'[^']*'"  # no alternatives overlap: linear, no backtracking
    r"|\[(?:\"[^\"]*\"|'[^']*'|<!--(?:[^-]|-(?!->))*-->|<(?!!--)|[^\]\"'<])*\]|[^\[\]>\"'])*>",
    re.S,
)
_DOCTYPE_NAME = re.compile(r"<!DOCTYPE\s+([\w:.-]+)")
# Only short literal values (or one character reference) survive: no nesting, no SYSTEM.
_SAFE_ENTITY = re.compile(r"<!ENTITY\s+(\w+)\s+\"(&#\w+;|[^\"&%<]{0,16})\"\s*>")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.I)
_SKIP_VALUE = re.compile(r"<(?:hour|day)\b[^<>]{0,200}>\s*([^<\s]+)\s*</(?:hour|day)\s*>")
# Neither may rescan what an earlier start already read: a tag ends at the next "<" too,
# and a name starts where no name character precedes it (linear on hostile markup).
_IMG_TAG = re.compile(r"<img\b[^<>]*>", re.I)
_ATTR = re.compile(r"(?<![\w:-])([\w:-]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)")
# One marker of a truncated summary, at the end of the text. A summary may end in several;
# one regex repeating the markers backtracked exponentially ("read more " 25 times: 43 s),
# since a space between two markers could end the one or begin the next.
_TRUNCATION_MARKER = re.compile(
    r"(?:\[\s*(?:…|\.{3})\s*\]|…|\.{3}"
    r"|(?:continue|keep)\s+reading\b[^.!?]{0,150}?[\s.…»→›>]*"
    r"|read\s+more\s*[.…»→›>]*|more\s*[»→›]+)\s*$",
    re.I,
)
_TRUNCATION_TAIL_CHARS = 400
_TRUNCATION_WORDS = ("…", "...", "reading", "more")  # every marker holds one (lower-cased)
_NOT_IMAGE_EXT = (".mp3", ".mp4", ".m4a", ".m4v", ".mov", ".webm", ".ogg", ".wav", ".m3u8")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_JSONFEED_VERSION = "https://jsonfeed.org/version/"
MAX_CATEGORY_LENGTH = 200
MAX_ENTRIES = 1000  # entries read per feed document; the rest are dropped with a warning
_ENTRY_START = re.compile(r"<(?:[\w.-]+:)?(?:item|entry)[\s>/]")
_ENTRY_END = re.compile(r"</(?:[\w.-]+:)?(?:item|entry)\s*>")


def parse_feed(
    content: bytes,
    *,
    url: str,
    headers: Mapping[str, str] | None = None,
    max_entries: int = MAX_ENTRIES,
    fast: bool = True,
) -> ParsedFeed:
    """Parse a fetched feed body into a `ParsedFeed`; raise `ParseError` when it is not a feed.

    `url` is the feed's final URL (base for relative links); `headers` the HTTP response
    headers, whose charset is honoured unless the body is valid UTF-8. A feed without entries
    is a valid result. `warning` says when the document needed recovery, or when entries past
    the first `max_entries` were dropped (a 50,000-entry feed would take minutes to parse).
    `fast=False` skips the lxml fast path and always runs feedparser (the reference).
    """
    if not content.strip():
        raise ParseError(url, "empty document")
    content_type = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    if content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return _parse_json_feed(content, url, max_entries)
    if "json" in content_type and not content.lstrip().startswith(b"<"):
        raise ParseError(url, "invalid JSON feed: body is not a JSON object")
    text, warning = _decode(content, _CHARSET.search(content_type))
    text = text.lstrip("\ufeff \t\r\n")  # nothing may precede "<?xml"
    if "\x00" in text[:4096]:
        raise ParseError(url, "undecodable or binary content, not a feed")
    if _HTML_START.match(text[:8192]):
        raise ParseError(url, "HTML page, not a feed")
    capped, cap_warning = _cap_entries(_defuse_entities(text, url), max_entries)
    version, feed, entries, bozo = _parse_xml(capped, url, fast)
    if not version and not entries:
        reason = "HTML page, not a feed" if _HTML_TAG.search(text[:8192]) else "not a feed"
        raise ParseError(url, f"{reason}: {bozo or 'no feed element found'}")
    warnings = [w for w in (warning, cap_warning, bozo) if w]
    return ParsedFeed(
        url=url,
        format=version or "unknown",
        title=html_to_text(str(feed.get("title") or "")),
        link=_safe_url(feed.get("link"), url),
        entries=tuple(_xml_entries(entries, url, version)),
        hints=_hints(feed, text),
        warning="; ".join(warnings) or None,
    )


def _parse_xml(
    text: str, url: str, fast: bool
) -> tuple[str, Mapping[str, Any], list[Any], str | None]:
    """Version, feed dict, entry dicts and bozo message: from the fast path when it is sure.

    A bug in the fast path (any exception) is logged and the reference parses the document:
    the fast path may only ever cost speed, never a feed."""
    parsed = None
    if fast:
        try:
            parsed = feeds_fast.parse(text, url)
        except Exception:
            log.exception("bug in the fast feed parser on %s; feedparser reads it instead", url)
    if parsed is not None:
        return parsed.version, parsed.feed, parsed.entries, None
    result = _run_feedparser(text, url)
    return str(result.get("version") or ""), result.feed, result.entries, _bozo(result)


def _decode(content: bytes, http_charset: re.Match[str] | None) -> tuple[str, str | None]:
    """Bytes → text: BOM, else valid UTF-8, else the declared charset, else a best guess."""
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, "replace"), None
    if content[:2] in (b"<\x00", b"\x00<"):
        return content.decode("utf-16-le" if content[0] else "utf-16-be", "replace"), None
    declared = http_charset.group(1) if http_charset else None
    xml_match = _XML_ENCODING.match(content)
    try:
        return content.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    for name in (declared, xml_match.group(1).decode("ascii") if xml_match else None):
        try:
            return content.decode(name or "utf-8"), None
        except (UnicodeDecodeError, LookupError):
            continue
    utf8 = content.decode("utf-8", "replace")
    errors = utf8.count("\ufffd")
    if sum(ord(char) > 127 for char in utf8) > 2 * errors:
        return utf8, f"invalid UTF-8: {errors} bytes replaced"
    return content.decode("cp1252", "replace"), "no usable charset: read as windows-1252"


def _defuse_entities(text: str, url: str) -> str:
    """Rebuild the DOCTYPE keeping only short literal entities; no-op without declarations."""
    if not _ENTITY_DECL.search(text):
        return text
    parts: list[str] = []
    position = 0
    while (match := _PROLOG_ITEM.match(text, position)) and match.end() > position:
        item = match.group()
        if item.startswith("<!DOCTYPE"):
            name = _DOCTYPE_NAME.match(item)
            safe = "\n".join(m.group() for m in _SAFE_ENTITY.finditer(item))
            item = f"<!DOCTYPE {name.group(1) if name else 'feed'} [\n{safe}\n]>" if safe else ""
        parts.append(item)
        position = match.end()
    if not re.match(r"<[A-Za-z_]", text[position : position + 2]):
        raise ParseError(url, "malformed DOCTYPE with entity declarations")
    return "".join(parts) + text[position:]


def _cap_entries(text: str, limit: int) -> tuple[str, str | None]:
    """Cut the entries after the first `limit` out of the document, before feedparser sees it.

    Everything from the (limit+1)-th <item>/<entry> start tag to the end of the last entry
    goes, so the closing channel/feed tags stay and the document stays well-formed.
    """
    extra = next(islice(_ENTRY_START.finditer(text), limit, None), None)
    if extra is None:
        return text, None
    last_end = deque(_ENTRY_END.finditer(text, extra.start()), maxlen=1)
    if not last_end:
        return text, None
    warning = f"more than {limit} entries: only the first {limit} were read"
    return text[: extra.start()] + text[last_end[0].end() :], warning


def _run_feedparser(text: str, url: str) -> Any:
    """Let feedparser read UTF-8 bytes from a stream (never a path or URL it could open)."""
    headers = {"content-type": "application/xml; charset=utf-8", "content-location": url}
    try:
        return feedparser.parse(
            io.BytesIO(text.encode("utf-8")),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # a library bug must not take the batch down
        raise ParseError(url, f"feed parser failed: {exc!r}") from exc


_FEEDPARSER_SYNC_AUTHOR = feedparser.mixin._FeedParserMixin._sync_author_detail


def _sync_author_detail(self: Any, key: str = "author") -> None:
    """feedparser's `_sync_author_detail` with a linear email search (`store_author_string`).

    Its own regex rescans each run of address characters from every position: one long
    author string held a parse for minutes. Where a detail already exists or there is no
    author, feedparser's method runs as it is."""
    context = self._get_context()
    detail = context.get(f"{key}s", [feedparser.FeedParserDict()])[-1]
    author = context.get(key)
    if detail or not author:
        _FEEDPARSER_SYNC_AUTHOR(self, key)
    else:
        feeds_fast.store_author_string(context, key, detail, author)


feedparser.mixin._FeedParserMixin._sync_author_detail = _sync_author_detail
_FEEDPARSER_ADD_TAG = feedparser.mixin._FeedParserMixin._add_tag


def _add_tag(self: Any, term: object, scheme: object, label: object) -> None:
    """feedparser's `_add_tag`, keeping at most `feeds_fast.MAX_TAGS` tags per context."""
    if len(self._get_context().get("tags", ())) < feeds_fast.MAX_TAGS:
        _FEEDPARSER_ADD_TAG(self, term, scheme, label)


feedparser.mixin._FeedParserMixin._add_tag = _add_tag


def _bozo(result: Any) -> str | None:
    if not result.get("bozo"):
        return None
    return clean_inline(str(result.get("bozo_exception") or "malformed document"))


def _xml_entries(entries: Iterable[Any], url: str, version: str) -> Iterator[RawEntry]:
    use_updated = version.startswith("rss")  # dc:date is the publication date in RSS
    for entry in entries:
        base = _entry_base(entry, url)
        title = html_to_text(str(entry.get("title") or ""))
        content = entry.get("content") or [{}]
        summary_html = str(entry.get("summary") or content[0].get("value") or "")
        summary, truncated = _clean_summary(summary_html)
        link = _safe_url(_alternate_link(entry), base)
        updated = _entry_date(entry, "updated")
        published = _entry_date(entry, "published") or (updated if use_updated else None)
        yield RawEntry(
            guid=_guid(entry.get("id"), link, title, summary),
            link=link,
            title=title,
            summary=summary,
            published=published,
            updated=updated,
            authors=_unique(_author_names(entry)),
            categories=_categories(t.get("label") or t.get("term") for t in entry.get("tags", [])),
            # Without xml:base, markup copied from the article resolves against the article.
            images=_xml_images(
                entry, link if base == url and link else base, summary_html, content
            ),
            summary_truncated=truncated,
        )


def _entry_base(entry: Any, url: str) -> str:
    for key in ("summary_detail", "title_detail"):
        base = (entry.get(key) or {}).get("base")
        if base:
            return str(base)
    return url


def _alternate_link(entry: Any) -> str:
    links = entry.get("links", [])
    alternates = [x for x in links if x.get("href") and x.get("rel", "alternate") == "alternate"]
    html_pages = [x for x in alternates if x.get("type") == "text/html"]
    return str((html_pages or alternates or [{"href": entry.get("link") or ""}])[0]["href"])


def _entry_date(entry: Any, key: str) -> datetime | None:
    # dict.get: FeedParserDict would answer "updated" with "published" (feedparser issue 310).
    parsed = dict.get(entry, f"{key}_parsed")
    if parsed:
        try:
            year, month, day, hour, minute, second = parsed[:6]
            return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
        except (ValueError, TypeError, OverflowError):
            pass
    raw = dict.get(entry, key)
    return parse_datetime(raw) if isinstance(raw, str) else None


def _author_names(entry: Any) -> Iterator[str]:
    for author in entry.get("authors") or []:
        yield author.get("name") or author.get("email") or ""
    if not entry.get("authors"):
        yield str(entry.get("author") or "")


def _xml_images(entry: Any, base: str, summary_html: str, content: list[Any]) -> tuple[Image, ...]:
    media = [m for m in entry.get("media_content", []) if _is_image_media(m)]
    enclosures = [
        {"url": link.get("href")}
        for link in entry.get("links", [])
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/")
    ]
    candidates = [
        *sorted(media, key=_area, reverse=True),
        *sorted(entry.get("media_thumbnail", []), key=_area, reverse=True),
        *enclosures,
    ]
    images = [_image(c.get("url"), c.get("width"), c.get("height"), base) for c in candidates]
    for markup in (summary_html, *(str(c.get("value") or "") for c in content)):
        images.append(_first_img(markup, base))
    return _unique_images(images)


def _is_image_media(media: Mapping[str, Any]) -> bool:
    medium, kind = media.get("medium"), str(media.get("type") or "")
    if medium or kind:
        return medium == "image" or kind.startswith("image/")
    try:
        path = urlsplit(str(media.get("url") or "")).path
    except ValueError:  # not a URL at all: not an image either
        return False
    return not path.lower().endswith(_NOT_IMAGE_EXT)


def _area(media: Mapping[str, Any]) -> int:
    return (_dimension(media.get("width")) or 0) * (_dimension(media.get("height")) or 1)


def _positive(value: object) -> int | None:
    try:
        number = int(str(value).strip().removesuffix("px"))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _dimension(value: object) -> int | None:
    number = _positive(value)
    return None if number is None else image_side(number)


def _image(url: object, width: object, height: object, base: str) -> Image | None:
    safe = _safe_url(url, base)
    return Image(url=safe, width=_dimension(width), height=_dimension(height)) if safe else None


def _first_img(markup: str, base: str) -> Image | None:
    for tag in islice(_IMG_TAG.finditer(markup), 20):
        attrs = {k.lower(): html.unescape(v.strip("\"'")) for k, v in _ATTR.findall(tag.group())}
        image = _image(attrs.get("src"), attrs.get("width"), attrs.get("height"), base)
        if image and not (image.width == 1 or image.height == 1):  # skip tracking pixels
            return image
    return None


def _unique_images(images: Iterable[Image | None]) -> tuple[Image, ...]:
    seen: dict[str, Image] = {}
    for image in filter(None, images):
        seen.setdefault(image.url, image)
    return tuple(seen.values())


def _safe_url(value: object, base: str) -> str:
    """An absolute http(s) URL, or "" for anything else (javascript:, data:, mailto:…).

    Characters no URL should carry raw (controls, lone surrogates…) come out
    percent-encoded: the link also stands in for a missing guid, which is stored as is."""
    if not isinstance(value, str) or not value.strip():
        return ""
    absolute = join_url(base, value.strip())
    try:
        parts = urlsplit(absolute)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return escape_url_controls(absolute)


def _clean_summary(markup: str) -> tuple[str, bool]:
    """Plain text of a summary, and whether it ended in a "…" / "Continue reading" tail."""
    text = html_to_text(markup)
    tail_start = max(0, len(text) - _TRUNCATION_TAIL_CHARS)
    if not may_hold_ignoring_case(text[tail_start:], _TRUNCATION_WORDS):
        return text, False  # ~1 us, where the marker pattern takes ~15 over 400 characters
    end = len(text)
    while match := _TRUNCATION_MARKER.search(text, tail_start, end):
        end = match.start()  # the leftmost marker that reaches the end, then the one before
    if end == len(text):
        return text, False
    return text[:end].rstrip(), True


def _guid(value: object, link: str, title: str, summary: str) -> str:
    guid = clean_inline(str(value)) if value is not None else ""
    digest = hashlib.sha1(f"{title}\n{summary}".encode(), usedforsecurity=False).hexdigest()
    return guid or link or f"sha1:{digest}"


def _unique(values: Iterable[object]) -> tuple[str, ...]:
    cleaned = (clean_inline(str(value)) for value in values if value)
    return tuple(dict.fromkeys(value for value in cleaned if value))


def _categories(values: Iterable[object]) -> tuple[str, ...]:
    """An entry's distinct categories: the first `feeds_fast.MAX_TAGS`, each at most
    `MAX_CATEGORY_LENGTH` characters (a longer one is not a category; all are stored)."""
    kept = (value for value in _unique(values) if len(value) <= MAX_CATEGORY_LENGTH)
    return tuple(islice(kept, feeds_fast.MAX_TAGS))


def _hints(feed: Mapping[str, Any], text: str) -> FeedHints:
    period = str(feed.get("sy_updateperiod") or "").strip().lower() or None
    hours: list[int] = []
    days: list[str] = []
    for kind, block in _skip_blocks(text):
        for value in _SKIP_VALUE.findall(block):
            if kind == "Hours" and value.isdigit() and int(value) < 24:
                hours.append(int(value))
            elif value.capitalize() in _DAYS:
                days.append(value.capitalize())
    return FeedHints(
        ttl_minutes=_positive(feed.get("ttl")),
        update_period=period,
        update_frequency=_positive(feed.get("sy_updatefrequency")),
        skip_hours=tuple(sorted(set(hours))),
        skip_days=tuple(dict.fromkeys(days)),
    )


def _skip_blocks(text: str) -> Iterator[tuple[str, str]]:
    """The kind ("Hours" or "Days") and text of each skipHours/skipDays element.

    Found with `str.find`, each character read once: a lazy regex rescanned the rest of
    the document from every unclosed opening tag (quadratic on a hostile feed)."""
    for kind in ("Hours", "Days"):
        opening, closing = f"<skip{kind}", f"</skip{kind}"
        position = 0
        while (start := text.find(opening, position)) >= 0:
            after = start + len(opening)
            next_char = text[after : after + 1]
            if next_char.isalnum() or next_char == "_":
                position = after  # another element's name, such as <skipHoursLocal>
                continue
            end = _closing_tag(text, closing, after)
            if end < 0:
                break
            yield kind, text[after:end]
            position = end + len(closing)


def _closing_tag(text: str, closing: str, start: int) -> int:
    """Where the first `closing` tag ("</name", then optional spaces and ">") begins, or -1."""
    while (end := text.find(closing, start)) >= 0:
        rest = end + len(closing)
        while rest < len(text) and text[rest].isspace():
            rest += 1
        if text[rest : rest + 1] == ">":
            return end
        start = rest
    return -1


def _parse_json_feed(content: bytes, url: str, max_entries: int = MAX_ENTRIES) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) → `ParsedFeed`."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ParseError(url, f"invalid JSON feed: {exc!r}") from exc
    if not isinstance(document, dict):
        raise ParseError(url, "invalid JSON feed: top level is not an object")
    items = document.get("items")
    if not _text(document.get("version")).startswith(_JSONFEED_VERSION) and not isinstance(
        items, list
    ):
        raise ParseError(url, "JSON document is not a JSON Feed")
    base = _safe_url(document.get("feed_url"), url) or url
    items = [item for item in _list(items) if isinstance(item, dict)]
    warning = None
    if len(items) > max_entries:
        warning = f"more than {max_entries} entries: only the first {max_entries} were read"
    return ParsedFeed(
        url=url,
        format="json",
        title=html_to_text(_text(document.get("title"))),
        link=_safe_url(document.get("home_page_url"), base),
        entries=tuple(_json_entry(item, base) for item in items[:max_entries]),
        warning=warning,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_entry(item: Mapping[str, Any], base: str) -> RawEntry:
    link = _safe_url(item.get("url"), base) or _safe_url(item.get("external_url"), base)
    title = html_to_text(_text(item.get("title")))
    content_html = _text(item.get("content_html"))
    summary_source = _text(item.get("summary")) or _text(item.get("content_text")) or content_html
    summary, truncated = _clean_summary(summary_source)
    authors = _list(item.get("authors")) or [item.get("author")]
    tags = _list(item.get("tags"))
    raw_id = item.get("id")
    images = [_image(item.get(key), None, None, base) for key in ("image", "banner_image")]
    return RawEntry(
        guid=_guid(raw_id if isinstance(raw_id, str | int) else None, link, title, summary),
        link=link,
        title=title,
        summary=summary,
        published=parse_datetime(_text(item.get("date_published")) or None),
        updated=parse_datetime(_text(item.get("date_modified")) or None),
        authors=_unique(a.get("name") for a in authors if isinstance(a, dict)),
        categories=_categories(tag for tag in tags if isinstance(tag, str)),
        images=_unique_images([*images, _first_img(content_html, base)]),
        summary_truncated=truncated,
    )
