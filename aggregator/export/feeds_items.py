"""What the feed renderers share: the `FeedSet` they take and the cleaned `FeedItem`.

    Record ──prepare_items──▶ FeedItem   text cleaned, URLs checked, lead image chosen

Every string that reaches an RSS, Atom or JSON Feed file passes through here first:

* text loses XML 1.0-illegal characters (C0 controls, lone surrogates, U+FFFE/U+FFFF),
  bidi overrides and other spoofing characters (`strip_unsafe_chars`), and single-line
  fields have their whitespace collapsed;
* URLs must be absolute ``http``/``https`` URLs; anything else (``javascript:``,
  ``data:``, relative, whitespace-smuggled schemes) is dropped, and a record whose
  ``webUrl`` is dropped is left out of the feed;
* dates are UTC, and a date after `now` is written as `now`.

Escaping is the serialisers' job (lxml, json); nothing here builds markup by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aggregator.dates import to_utc
from aggregator.models import Image, Record
from aggregator.text import collapse_whitespace, strip_unsafe_chars

#: Atom's `updated` for a feed without any dated entry (stable, unlike "now").
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_IMAGE_TYPE = "image/jpeg"

_SURROGATES = re.compile("[\ud800-\udfff]")
_URL_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_DOMAIN = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)+")
_IMAGE_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "svg": "image/svg+xml",
    "bmp": "image/bmp",
}


@dataclass(frozen=True, slots=True)
class FeedSet:
    """One exported feed: its file stem (``all``, a topic name), title and records."""

    name: str
    title: str
    records: Sequence[Record]


@dataclass(frozen=True, slots=True)
class FeedImage:
    """A lead image that is safe to publish; `type` is guessed from the extension."""

    url: str
    type: str
    width: int | None
    height: int | None
    title: str


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A record as it appears in a feed: cleaned text, checked URLs, UTC date."""

    title: str
    url: str
    summary: str
    published: datetime | None
    tags: tuple[str, ...]
    provider_name: str
    provider_url: str | None
    image: FeedImage | None
    category: str
    type: str
    quality: int


def clean_text(text: str) -> str:
    """Drop XML-illegal, control, bidi-override characters and lone surrogates."""
    return _SURROGATES.sub("", strip_unsafe_chars(text))


def clean_line(text: str) -> str:
    """`clean_text`, then whitespace collapsed to single spaces."""
    return collapse_whitespace(clean_text(text))


def safe_url(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL with a host, else None.

    Controls are dropped, the ends trimmed and tabs/newlines removed first, as browsers
    do (WHATWG URL), so ``"java\\tscript:"`` cannot pass; inner spaces become ``%20``.
    """
    if not url:
        return None
    trimmed = _URL_TAB_NEWLINE.sub("", clean_text(url)).strip()
    candidate = trimmed.replace(" ", "%20")
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return candidate


def require_url(url: str, what: str) -> str:
    """`safe_url(url)` or ValueError naming `what`."""
    checked = safe_url(url)
    if checked is None:
        raise ValueError(f"{what}: not an absolute http(s) URL: {url!r}")
    return checked


def image_type(url: str) -> str:
    """The image MIME type guessed from the URL path's extension (default image/jpeg)."""
    path = urlsplit(url).path
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _IMAGE_TYPES.get(extension, DEFAULT_IMAGE_TYPE)


def provider_url(domain: str) -> str | None:
    """``https://<domain>/`` for a plausible host name, else None."""
    host = clean_line(domain).lower().rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return f"https://{host}/" if _DOMAIN.fullmatch(host) else None


def lead_image(images: Iterable[Image], fallback_title: str) -> FeedImage | None:
    """The first image whose URL is safe, as a `FeedImage`; None when there is none."""
    for image in images:
        url = safe_url(image.url)
        if url is None:
            continue
        width = image.width if image.width and image.width > 0 else None
        height = image.height if image.height and image.height > 0 else None
        title = clean_line(image.title) if image.title else fallback_title
        return FeedImage(url, image_type(url), width, height, title)
    return None


def _item(record: Record, now: datetime) -> FeedItem | None:
    url = safe_url(record.web_url)
    if url is None:
        return None
    title = clean_line(record.title)
    published = None if record.published is None else min(to_utc(record.published), now)
    name = clean_line(record.provider.name) or clean_line(record.provider.domain)
    return FeedItem(
        title=title,
        url=url,
        summary=clean_line(record.excerpt),
        published=published,
        tags=tuple(dict.fromkeys(tag for tag in map(clean_line, record.topics) if tag)),
        provider_name=name or "Unknown",
        provider_url=provider_url(record.provider.domain),
        image=lead_image(record.images, title),
        category=clean_line(record.category),
        type=clean_line(record.type),
        quality=record.quality,
    )


def prepare_items(records: Iterable[Record], now: datetime) -> list[FeedItem]:
    """Clean `records` in order; unsafe links and repeated URLs (after the first) are left out."""
    now = to_utc(now)
    items: list[FeedItem] = []
    seen: set[str] = set()
    for record in records:
        item = _item(record, now)
        if item is not None and item.url not in seen:
            seen.add(item.url)
            items.append(item)
    return items


def feed_updated(items: Sequence[FeedItem]) -> datetime:
    """The newest entry date: a feed's stable "last changed" time (EPOCH when undated)."""
    return max((item.published for item in items if item.published), default=EPOCH)
