"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1) documents.

Each item has ``id`` and ``url`` (= webUrl), ``title``, ``summary`` and ``content_text``
(= excerpt), ``date_published`` (RFC 3339 UTC), ``tags`` (topics), ``authors``
(``[{name: provider, url: https://<domain>/}]``), ``image`` (lead image) and an
``_aggregator`` extension object (category, type, quality). There is no feed-level
date in JSON Feed, so nothing time-dependent is written at all.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aggregator.dates import format_utc
from aggregator.export.feeds_items import FeedItem, FeedSet, clean_line, prepare_items, require_url

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def _json_item(item: FeedItem) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": item.url, "url": item.url, "title": item.title}
    entry["summary"] = item.summary
    entry["content_text"] = item.summary
    if item.published is not None:
        entry["date_published"] = format_utc(item.published)
    if item.tags:
        entry["tags"] = list(item.tags)
    author: dict[str, str] = {"name": item.provider_name}
    if item.provider_url is not None:
        author["url"] = item.provider_url
    entry["authors"] = [author]
    if item.image is not None:
        entry["image"] = item.image.url
    entry["_aggregator"] = {"category": item.category, "type": item.type, "quality": item.quality}
    return entry


def render_json_feed(feed: FeedSet, *, site_url: str, feed_url: str, now: datetime) -> bytes:
    """Render `feed` as a JSON Feed 1.1 document (UTF-8 bytes, trailing newline).

    `now` only caps future entry dates. Raises ValueError when `site_url` or
    `feed_url` is not an absolute http(s) URL.
    """
    site, self_url = require_url(site_url, "site_url"), require_url(feed_url, "feed_url")
    document = {
        "version": JSON_FEED_VERSION,
        "title": clean_line(feed.title),
        "home_page_url": site,
        "feed_url": self_url,
        "items": [_json_item(item) for item in prepare_items(feed.records, now)],
    }
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2)
    return (text + "\n").encode("utf-8")
