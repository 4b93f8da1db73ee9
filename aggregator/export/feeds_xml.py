"""RSS 2.0 and Atom 1.0 documents built with lxml (which escapes every text and attribute).

    RSS   <item>: title, link, description (the excerpt, HTML-escaped: RSS descriptions
          are HTML), pubDate, guid isPermaLink, category per topic,
          source url=https://<provider domain>/, enclosure + media:content (lead image)
    Atom  <entry>: id = webUrl, title/summary type="text", alternate link, published,
          updated, author/name = provider, category term per topic,
          link rel="enclosure" + media:content (lead image)

The channel/feed date is the newest entry's date, never the time of the run, so the
same records always give the same bytes.
"""

from __future__ import annotations

import html
from datetime import datetime
from email.utils import format_datetime
from typing import cast

from lxml import etree

from aggregator.dates import format_utc, to_utc
from aggregator.export.feeds_items import (
    FeedImage,
    FeedItem,
    FeedSet,
    clean_line,
    feed_updated,
    prepare_items,
    require_url,
)

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
GENERATOR = "aggregator"
_A = f"{{{ATOM_NS}}}"
_M = f"{{{MEDIA_NS}}}"
_DC = f"{{{DC_NS}}}"
_RSS_NSMAP = {"atom": ATOM_NS, "dc": DC_NS, "media": MEDIA_NS}


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True))


def _rfc822(value: datetime) -> str:
    return format_datetime(to_utc(value), usegmt=True)


def _media_content(parent: etree._Element, image: FeedImage) -> None:
    media = _sub(parent, f"{_M}content", url=image.url, medium="image", type=image.type)
    if image.width is not None:
        media.set("width", str(image.width))
    if image.height is not None:
        media.set("height", str(image.height))
    if image.title:
        _sub(media, f"{_M}title", image.title, type="plain")


def _rss_item(channel: etree._Element, item: FeedItem) -> None:
    entry = _sub(channel, "item")
    _sub(entry, "title", item.title)
    _sub(entry, "link", item.url)
    _sub(entry, "description", html.escape(item.summary, quote=False))
    if item.published is not None:
        _sub(entry, "pubDate", _rfc822(item.published))
    _sub(entry, "guid", item.url, isPermaLink="true")
    _sub(entry, f"{_DC}creator", item.provider_name)
    for tag in item.tags:
        _sub(entry, "category", tag)
    if item.provider_url is not None:
        _sub(entry, "source", item.provider_name, url=item.provider_url)
    if item.image is not None:
        _sub(entry, "enclosure", url=item.image.url, type=item.image.type, length="0")
        _media_content(entry, item.image)


def render_rss(feed: FeedSet, *, site_url: str, feed_url: str, now: datetime) -> bytes:
    """Render `feed` as an RSS 2.0 document (UTF-8 bytes).

    `now` only caps entry dates (a date in the future is written as `now`); the
    channel's lastBuildDate is the newest entry's date, so unchanged records give
    identical bytes. Raises ValueError when `site_url` or `feed_url` is not http(s).
    """
    site, self_url = require_url(site_url, "site_url"), require_url(feed_url, "feed_url")
    items = prepare_items(feed.records, now)
    title = clean_line(feed.title)
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=_RSS_NSMAP)
    channel = _sub(rss, "channel")
    _sub(channel, "title", title)
    _sub(channel, "link", site)
    _sub(channel, "description", html.escape(title, quote=False))
    _sub(channel, f"{_A}link", href=self_url, rel="self", type="application/rss+xml")
    _sub(channel, "generator", GENERATOR)
    if items:
        _sub(channel, "lastBuildDate", _rfc822(feed_updated(items)))
    for item in items:
        _rss_item(channel, item)
    return _serialize(rss)


def _atom_entry(root: etree._Element, item: FeedItem, fallback: datetime) -> None:
    entry = _sub(root, f"{_A}entry")
    _sub(entry, f"{_A}id", item.url)
    _sub(entry, f"{_A}title", item.title, type="text")
    _sub(entry, f"{_A}link", rel="alternate", type="text/html", href=item.url)
    if item.published is not None:
        _sub(entry, f"{_A}published", format_utc(item.published))
    _sub(entry, f"{_A}updated", format_utc(item.published or fallback))
    author = _sub(entry, f"{_A}author")
    _sub(author, f"{_A}name", item.provider_name)
    if item.provider_url is not None:
        _sub(author, f"{_A}uri", item.provider_url)
    _sub(entry, f"{_A}summary", item.summary, type="text")
    for tag in item.tags:
        _sub(entry, f"{_A}category", term=tag)
    if item.image is not None:
        _sub(entry, f"{_A}link", rel="enclosure", type=item.image.type, href=item.image.url)
        _media_content(entry, item.image)


def render_atom(feed: FeedSet, *, site_url: str, feed_url: str, now: datetime) -> bytes:
    """Render `feed` as an Atom 1.0 document (UTF-8 bytes).

    The feed's id is `feed_url` and its `updated` the newest entry's date (1970-01-01
    for a feed without dated entries); `now` only caps future entry dates.
    Raises ValueError when `site_url` or `feed_url` is not http(s).
    """
    site, self_url = require_url(site_url, "site_url"), require_url(feed_url, "feed_url")
    items = prepare_items(feed.records, now)
    updated = feed_updated(items)
    # lxml wants None as the default-namespace key; lxml-stubs only admit str keys.
    nsmap = cast("dict[str, str]", {None: ATOM_NS, "media": MEDIA_NS})
    root = etree.Element(f"{_A}feed", nsmap=nsmap)
    _sub(root, f"{_A}id", self_url)
    _sub(root, f"{_A}title", clean_line(feed.title), type="text")
    _sub(root, f"{_A}updated", format_utc(updated))
    _sub(root, f"{_A}link", rel="self", type="application/atom+xml", href=self_url)
    _sub(root, f"{_A}link", rel="alternate", type="text/html", href=site)
    _sub(root, f"{_A}generator", GENERATOR)
    for item in items:
        _atom_entry(root, item, updated)
    return _serialize(root)
