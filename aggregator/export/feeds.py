"""Exported feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 for all records and per topic.

    write_feeds(out_dir, records, topics, size=N, base_url=…, now=…)
      FeedCollector: records offered newest first, one at a time; for "all" and every topic
        newest N records (of that topic)  → FeedSet
        render_rss / render_atom / render_json_feed  → bytes   (feeds_xml.py, feeds_json.py)
        atomic_write(out_dir/feeds/<stem>.<ext>)               only when the bytes changed,
                                                               one disk flush for them all
      remove feeds/topic-*.{rss,atom,json} of topics no longer configured

File stems are ``all`` and ``topic-<slug>``; a slug that two topics share, or that a
non-ASCII name reduces to nothing, gets ``-<8 hex of sha256(name)>`` so names never
collide and never come from untrusted text unchecked. Output is deterministic: the same
records give the same bytes, whatever `now` is (it only caps future dates).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aggregator.errors import ExportError
from aggregator.export.atomic import atomic_write, sync_directory
from aggregator.export.feeds_items import FeedSet, require_url, safe_url
from aggregator.export.feeds_json import render_json_feed
from aggregator.export.feeds_xml import render_atom, render_rss
from aggregator.export.files import slugify
from aggregator.models import Record

__all__ = [
    "FEEDS_DIR",
    "FeedCollector",
    "FeedSet",
    "FeedWriteStats",
    "feed_stems",
    "render_atom",
    "render_json_feed",
    "render_rss",
    "write_feeds",
]

log = logging.getLogger(__name__)

FEEDS_DIR = "feeds"
ALL_STEM = "all"
Renderer = Callable[..., bytes]
FORMATS: tuple[tuple[str, Renderer], ...] = (
    ("rss", render_rss),
    ("atom", render_atom),
    ("json", render_json_feed),
)
_TOPIC_FILE = re.compile(r"topic-[a-z0-9-]+\.(?:rss|atom|json)")


@dataclass(frozen=True, slots=True)
class FeedWriteStats:
    """What one `write_feeds` run did: files written, left unchanged, and removed."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0


def _name_hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def feed_stems(topics: Iterable[str]) -> dict[str, str]:
    """Map each topic name to its file stem ``topic-<slug>`` (unique, ``[a-z0-9-]``)."""
    names = list(dict.fromkeys(topics))
    slugs = {name: slugify(name) for name in names}
    for name, slug in slugs.items():
        if slug == "untitled" and name.strip().lower() != "untitled":
            slugs[name] = ""
    counts = Counter(slugs.values())
    stems: dict[str, str] = {}
    for name, slug in slugs.items():
        if not slug:
            stems[name] = f"topic-{_name_hash(name)}"
        elif counts[slug] > 1:
            stems[name] = f"topic-{slug}-{_name_hash(name)}"
        else:
            stems[name] = f"topic-{slug}"
    return stems


def _write_set(directory: Path, stem: str, feed: FeedSet, base: str, now: datetime) -> int:
    """Write the three files of one feed set; returns how many were (re)written."""
    written = 0
    for extension, render in FORMATS:
        feed_url = f"{base}/{FEEDS_DIR}/{stem}.{extension}"
        data = render(feed, site_url=f"{base}/", feed_url=feed_url, now=now)
        written += atomic_write(directory / f"{stem}.{extension}", data, durable=False)
    return written


def _remove_stale(directory: Path, keep: set[str]) -> int:
    removed = 0
    for path in directory.iterdir():
        if _TOPIC_FILE.fullmatch(path.name) and path.name not in keep and path.is_file():
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ExportError(str(path), f"cannot remove: {exc.strerror or exc}") from exc
            log.info("removed stale feed %s", path.name)
            removed += 1
    return removed


class FeedCollector:
    """Picks the records of every feed (all, and each topic) from a stream, newest first.

    `offer` the published records newest first: each feed keeps the first `size` (per
    topic: those listing the topic) with a publishable, not yet seen webUrl, among the
    first `window` records offered (all of them when `window` is None). Only the chosen
    records are held, so the stream itself can be as long as the store.
    """

    def __init__(self, topics: Sequence[str], *, size: int, window: int | None = None) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.stems = feed_stems(topics)
        self._size = size
        self._remaining = window
        feeds: list[str | None] = [None, *self.stems]  # None is the "all" feed
        self._picked: dict[str | None, tuple[list[Record], set[str]]] = {
            feed: ([], set()) for feed in feeds
        }

    def offer(self, record: Record) -> None:
        """Consider `record`, the next newest published record."""
        if self._remaining is not None:
            if self._remaining <= 0:
                return
            self._remaining -= 1
        url = safe_url(record.web_url)
        if url is None:
            return
        for feed in (None, *record.topics):
            picked = self._picked.get(feed)
            if picked is None:
                continue
            chosen, seen = picked
            if len(chosen) < self._size and url not in seen:
                seen.add(url)
                chosen.append(record)

    def feed_sets(self, site_title: str) -> list[tuple[str, FeedSet]]:
        """(file stem, feed) for "all" and every topic, in that order."""
        everything = self._picked[None][0]
        sets = [(ALL_STEM, FeedSet(ALL_STEM, f"{site_title}: all topics", everything))]
        for topic, stem in self.stems.items():
            chosen = self._picked[topic][0]
            sets.append((stem, FeedSet(topic, f"{site_title}: {topic}", chosen)))
        return sets

    def write(
        self, out_dir: Path, *, base_url: str, now: datetime, site_title: str = "aggregator"
    ) -> FeedWriteStats:
        """Write the collected feeds; see `write_feeds`."""
        base = require_url(base_url, "base_url").rstrip("/")
        directory = out_dir / FEEDS_DIR
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(str(directory), f"cannot create: {exc.strerror or exc}") from exc
        sets = self.feed_sets(site_title)
        written = sum(_write_set(directory, stem, feed, base, now) for stem, feed in sets)
        if written:
            sync_directory(directory)
        keep = {f"{stem}.{extension}" for stem, _ in sets for extension, _ in FORMATS}
        removed = _remove_stale(directory, keep)
        return FeedWriteStats(written, len(keep) - written, removed)


def write_feeds(
    out_dir: Path,
    records: Iterable[Record],
    topics: Sequence[str],
    *,
    size: int,
    base_url: str,
    now: datetime,
    site_title: str = "aggregator",
) -> FeedWriteStats:
    """Write ``out_dir/feeds/{all,topic-<slug>}.{rss,atom,json}``, each only if it changed.

    `records` must already be the published records, newest first; each feed takes the
    newest `size` (per topic: those listing the topic). `base_url` is the public URL of
    `out_dir` (feed URLs are ``<base_url>/feeds/<file>``). Feed files of topics that are
    no longer in `topics` are removed. Raises ValueError for a bad `base_url` or `size`,
    ExportError when a file cannot be written.
    """
    collector = FeedCollector(topics, size=size)
    require_url(base_url, "base_url")
    for record in records:
        collector.offer(record)
    return collector.write(out_dir, base_url=base_url, now=now, site_title=site_title)
