"""The tracking layer between records and the store: topics → quality, then stories.

    enrich(records)        topics (rules from config) and quality with its reasons
    after_upsert(records)  link each stored record into a story (online, windowed index),
                           then refresh heat, related lists and corroboration for every
                           record whose story changed
    after_upsert(records, defer=True), then flush()
                           a crawl's way: link each batch as it comes, queue what it
                           touches (in the store), refresh each queued record once at the
                           end; a record about to leave the index is refreshed first

The story index is held in memory and covers only the story window: after a restart it is
rebuilt from the window's stored records, so its cost follows the window, not the store.
A Tracker that lives on (the daemon, a distributed worker) keeps its index between batches
and, under the linking lock, catches up with the stories other processes wrote since it
last looked (`records.link_seq`, see `aggregator.store.link_log`) instead of rebuilding.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from aggregator.linkbatch import LinkBatch
from aggregator.models import Record
from aggregator.quality import is_publishable, score_quality
from aggregator.settings import Settings
from aggregator.store.chunks import chunked
from aggregator.store.values import QualityUpdate, StoredRecord, TrackingUpdate
from aggregator.stories import LinkFeatures, LinkItem, StoryIndex
from aggregator.stories_prepare import link_features
from aggregator.topics import TopicMatcher, assign_topics

if TYPE_CHECKING:  # crawl workers import this module; they never open a store
    from aggregator.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _LinkWrites:
    """What linking batches writes: record updates, then the refresh queue's changes."""

    updates: list[TrackingUpdate]
    enqueue: dict[int, datetime]
    dequeue: set[int]

    def then(self, later: _LinkWrites) -> _LinkWrites:
        """These writes followed by `later`'s, as one transaction applies them: the queue's
        removals before its additions, and an addition leaving a queued record's time."""
        enqueue, dequeue = dict(self.enqueue), set(self.dequeue)
        for key in later.dequeue:
            enqueue.pop(key, None)
            dequeue.add(key)
        for key, at in later.enqueue.items():
            enqueue.setdefault(key, at)
        return _LinkWrites([*self.updates, *later.updates], enqueue, dequeue)


class Linker(Protocol):
    """What a crawl needs of its linker: a `Tracker`, or a `LinkerProcess` running one."""

    def after_upsert(
        self,
        records: Sequence[Record],
        *,
        now: datetime,
        keep_given: bool = False,
        features: Sequence[LinkFeatures] = (),
        defer: bool = False,
    ) -> None:
        """Link freshly stored records into stories (see `Tracker.after_upsert`)."""

    def after_upsert_many(self, batches: Sequence[LinkBatch]) -> None:
        """Link several batches, writing once (see `Tracker.after_upsert_many`)."""

    def flush(self, *, now: datetime) -> int:
        """Refresh the records the deferred links queued (see `Tracker.flush`)."""

    def warm_up(self) -> None:
        """Get ready to link soon (start what the first call would otherwise wait for)."""


LEFTOVER_CHUNK = 500  # records left without a story that a flush links at a time
FLUSH_CHUNK = 500  # records refreshed per transaction: bounds the stored records held at once


@dataclass(frozen=True, slots=True)
class RefreshPlan:
    """The story index's part of refreshing a chunk of queued records: the chunk's `keys`,
    the time it is refreshed at, and (key, heat, related keys, providers of its story) for
    each key the index still holds."""

    keys: tuple[int, ...]
    now: datetime
    live: tuple[tuple[int, int, tuple[int, ...], int], ...]
    updates: tuple[TrackingUpdate, ...] | None = None  # finished where planned, if asked


class Tracker:
    """Applies topics, quality, stories, heat and related for one settings + store pair."""

    def __init__(self, settings: Settings, store: Store | None) -> None:
        self.settings = settings
        self.store = store
        self.matcher = TopicMatcher(settings.topics)
        self._weights = {source.name: source.weight for source in settings.sources}
        self.window = timedelta(hours=settings.stories.window_hours)
        self._index: StoryIndex | None = None
        self._thread_lock = threading.Lock()
        self._unlinked: list[StoredRecord] = []  # found by the last rebuild, to link next
        self._seen_seq = 0  # the last linking batch the index reflects
        self._pending: dict[int, datetime] = {}  # queued for `flush`: key → time it counts at
        self._flushing: tuple[StoryIndex, datetime, deque[list[int]]] | None = None
        self.rebuilds = 0  # full rebuilds of the index, for tests and metrics

    # ------------------------------------------------------------- topics, quality

    def enrich(self, records: Sequence[Record], *, now: datetime) -> list[Record]:
        """Give each record its topics, quality score, reasons and published flag.

        Topic rules that map feed categories read the record's stored ones
        (`provenance.categories`), exactly as `retag` does later."""
        enriched = []
        for record in records:
            topics = assign_topics(self.matcher, record)
            enriched.append(self._scored(replace(record, topics=topics), now=now))
        return enriched

    def enrich_imported(
        self, records: Sequence[Record], *, now: datetime, recompute: bool
    ) -> list[Record]:
        """Compute what imported records lack (all of it with `recompute`); keep the rest."""
        result = []
        for record in records:
            if recompute or not record.topics:
                record = replace(record, topics=assign_topics(self.matcher, record))
            if recompute or (record.quality == 0 and not record.quality_reasons):
                record = self._scored(record, now=now)
            result.append(record)
        return result

    def _scored(self, record: Record, *, now: datetime, providers: int = 1) -> Record:
        weight = self._source_weight(record.provenance.source_name)
        score = score_quality(record, now=now, source_weight=weight, providers_in_story=providers)
        threshold = self.settings.quality.threshold
        return replace(
            record,
            quality=score.score,
            quality_reasons=score.reasons,
            is_published=is_publishable(score, threshold=threshold, is_duplicate=False),
        )

    def _source_weight(self, source_name: str) -> float:
        return self._weights.get(source_name, 1.0)

    def warm_up(self) -> None:
        """Nothing to start: this Tracker links in the calling process."""

    # ------------------------------------------------------------- stories

    def after_upsert(
        self,
        records: Sequence[Record],
        *,
        now: datetime,
        keep_given: bool = False,
        features: Sequence[LinkFeatures] = (),
        defer: bool = False,
    ) -> None:
        """Link freshly stored records into stories, one thread and one process at a time
        (the store's linking lock: concurrent workers never open two stories for one event).

        `features`, when given, are `record_features` of `records`, in the same order
        (computed by a crawl worker); otherwise they are computed while linking.

        With `defer`, the stories are written now but the heat, related lists and
        corroborated quality of every record they touch wait in the refresh queue for
        `flush`: a crawl then refreshes a record once, not once per batch that touches it.

        Safe to call from worker threads: the crawl runs it off the event loop, so waiting
        for another process's lock never stalls fetching nor a worker's heartbeat."""
        if self.store is None or not records:
            return
        with self._thread_lock, self.store.linking_lock():
            before = dict(self._pending)
            writes = self._link(
                records, now=now, keep_given=keep_given, features=features, defer=defer
            )
            if writes is not None:
                self._write_links(writes, before)

    def after_upsert_many(self, batches: Sequence[LinkBatch]) -> None:
        """`after_upsert(..., defer=True)` of each batch in turn, their writes sent in one
        transaction: the stories are those of the calls one by one, for one write (and one
        wait for the database's write lock) instead of one per batch."""
        if self.store is None:
            return
        with self._thread_lock, self.store.linking_lock():
            before = dict(self._pending)
            merged = _LinkWrites([], {}, set())
            try:
                for batch in batches:
                    writes = self._link(
                        batch.records, now=batch.now, keep_given=False,
                        features=batch.features, defer=True,
                    )  # fmt: skip
                    if writes is not None:
                        merged = merged.then(writes)
            except BaseException:  # earlier batches are linked here, not in the store
                self._index = None
                self._pending = before
                raise
            if merged.updates or merged.enqueue or merged.dequeue:
                self._write_links(merged, before)

    def flush(self, *, now: datetime) -> int:
        """Refresh every record waiting in the refresh queue (this process's, and any that a
        killed process left), a transaction per `FLUSH_CHUNK`; return how many waited."""
        if self.store is None:
            return 0
        with self._thread_lock, self.store.linking_lock():
            waiting, index = self._flush_start(now)
            if index is None:
                return 0
            for keys in chunked(sorted(waiting), FLUSH_CHUNK):
                refreshed = self._refresh(index, keys, now=now)
                self.store.apply_tracking(list(refreshed.values()), dequeue=keys)
                for key in keys:
                    self._pending.pop(key, None)
            return len(waiting)

    def flush_begin(self, *, now: datetime, chunk: int = FLUSH_CHUNK) -> int:
        """Start a flush whose chunks another process finishes: `flush_next` plans each
        chunk here (the index's part), the caller turns the plan into updates
        (`finish_refresh`) and writes them with the chunk taken off the queue. Returns
        how many records wait. The linker process's flush, so that the story index of
        the next chunk is read while the caller rescores and writes the last one."""
        if self.store is None:
            return 0
        with self._thread_lock, self.store.linking_lock():
            self._flushing = None
            waiting, index = self._flush_start(now)
            if index is not None:
                self._flushing = (index, now, deque(chunked(sorted(waiting), chunk)))
            return len(waiting)

    def _flush_start(self, now: datetime) -> tuple[dict[int, datetime], StoryIndex | None]:
        """The records waiting for a refresh (the store's queue and this process's) and, when
        there are any, the index to refresh them from. Stored records left without a story
        are linked first, and wait with them."""
        assert self.store is not None
        self._link_leftovers(now)
        waiting = {**self.store.queued_for_refresh(), **self._pending}
        if not waiting:
            return waiting, None
        return waiting, self._story_index(min(now, *waiting.values()))

    def _link_leftovers(self, now: datetime) -> None:
        """Link the stored records that have no story, `LEFTOVER_CHUNK` at a time, their
        refresh deferred to the flush under way.

        A crawl stopped between storing a source's batch and linking it (Ctrl-C, SIGTERM,
        a kill, a crash) leaves such records, and its next crawl may bring nothing new to
        link with them: this is where they get their stories, heat and related lists."""
        assert self.store is not None
        tried: set[int] = set()
        while ids := [key for key in self.store.unlinked_ids(LEFTOVER_CHUNK) if key not in tried]:
            tried.update(ids)  # one that cannot be linked is not tried again forever
            stored = self.store.get_records(ids)
            records = [stored[key].record for key in ids if key in stored]
            before = dict(self._pending)
            try:
                writes = self._link(records, now=now, keep_given=False, defer=True)
                if writes is not None:
                    self._write_links(writes, before)
            except Exception:  # they wait for the next flush; the queued ones refresh now
                log.exception("could not link %d stored records left without a story", len(ids))
                self._index = None  # it may hold links the store does not: rebuild
                self._pending = before
                return

    def flush_next(self, *, finish: bool = False) -> RefreshPlan | None:
        """The next chunk's plan of the flush `flush_begin` started (None: all planned);
        with `finish`, its `updates` too (when the caller is the slower of the two)."""
        if self.store is None or self._flushing is None:
            return None
        with self._thread_lock, self.store.linking_lock():
            index, now, chunks = self._flushing
            if not chunks:
                self._flushing = None
                return None
            keys = chunks.popleft()
            for key in keys:  # the caller dequeues them; if that fails, the store still has them
                self._pending.pop(key, None)
            plan = self._plan_refresh(index, keys, now=now)
        if not finish:
            return plan
        return replace(plan, updates=tuple(self.finish_refresh(plan).values()))

    def _link(
        self,
        records: Sequence[Record],
        *,
        now: datetime,
        keep_given: bool,
        features: Sequence[LinkFeatures] = (),
        defer: bool = False,
    ) -> _LinkWrites | None:
        """Link freshly stored records into stories and refresh what their stories touch
        (with `defer`: queue it, refreshing only queued records about to leave the index).

        Returns the resulting writes (story ids, heat, related lists, corroborated
        quality, the refresh queue), for the caller to send in one transaction, after
        noting them in `_pending` (the next batch's refresh reads it); None: nothing to
        write.
        """
        if self.store is None or not records:
            return None
        ids = self.store.find_by_urls(record.web_url for record in records)
        # rebuild (once) around the batch's own dates, so a backfill of older articles
        # still meets the stored records of its time, as in one long-lived process
        index = self._story_index(min([now, *(_when(record, now) for record in records)]))
        batch = {ids[r.web_url]: r for r in records if r.web_url in ids}
        known = _features_by_key(ids, records, features)
        batch.update((o.id, o.record) for o in self._unlinked if o.id not in batch)
        self._unlinked = []
        if not batch:
            return None
        stories: dict[int, str] = {}
        touched: set[int] = set()
        # sources arrive one after another, each with days of items: evict only what is a
        # window older than this batch's OLDEST item, or its items would find their peers gone
        horizon = min(_when(record, now) for record in batch.values()) - self.window
        leaving = index.leaving(self._pending, arriving=len(batch), before=horizon) if defer else ()
        refreshed = self._refresh(index, leaving, now=now)  # before they leave the index
        for key, record in sorted(batch.items(), key=lambda item: _arrival_order(item[1])):
            when = _when(record, now)
            item = _link_item(key, record, known.get(key))
            result = index.add(item, now=when, evict_before=horizon)
            stories[key] = result.story_id
            stories.update((moved, index.story_of(moved)) for moved in result.moved_keys)
            touched.update(result.touched_keys)
            touched.add(key)
        given = {ids[r.web_url] for r in records if keep_given and r.web_url in ids}
        waiting: dict[int, datetime] = {}
        if defer:
            waiting = {key: index.entry_time(key) for key in touched - given if key in index}
        else:
            refreshed.update(self._refresh(index, touched - given, now=now))
        updates = [
            replace(refreshed.get(key, TrackingUpdate(key)), story_id=story)
            for key, story in stories.items()
        ]
        updates += [update for key, update in refreshed.items() if key not in stories]
        done = set(refreshed) - set(waiting)
        for key in done:
            self._pending.pop(key, None)
        self._pending.update(waiting)
        return _LinkWrites(updates, waiting, done)

    def _write_links(self, writes: _LinkWrites, pending_before: dict[int, datetime]) -> None:
        """Write linked batches and their refresh-queue changes under a new link sequence;
        if that fails, `_pending` is what it was before them and the index is rebuilt."""
        assert self.store is not None
        try:
            seq = self.store.apply_links(
                writes.updates, enqueue=writes.enqueue, dequeue=writes.dequeue
            )
        except BaseException:
            self._index = None  # it holds links the store does not: rebuild next time
            self._pending = pending_before
            raise
        if seq == self._seen_seq + 1:  # nobody linked in between (SQLite has no lock)
            self._seen_seq = seq

    def _refresh(
        self, index: StoryIndex, keys: Iterable[int], *, now: datetime
    ) -> dict[int, TrackingUpdate]:
        return self.finish_refresh(self._plan_refresh(index, keys, now=now))

    def _plan_refresh(
        self, index: StoryIndex, keys: Iterable[int], *, now: datetime
    ) -> RefreshPlan:
        """What the story index says about each of `keys` it holds: heat, related records
        and the number of providers of its story (`finish_refresh` does the rest)."""
        keys = tuple(keys)
        limit = self.settings.stories.related_max
        heat: dict[str, int] = {}
        live: list[tuple[int, int, tuple[int, ...], int]] = []
        for key in sorted(key for key in keys if key in index):
            story = index.story_of(key)
            if story not in heat:
                heat[story] = index.heat(story, now=now)
            providers = len({item.provider for item in index.members(story)})
            live.append((key, heat[story], tuple(index.related(key, limit=limit)), providers))
        return RefreshPlan(tuple(keys), now, tuple(live))

    def finish_refresh(self, plan: RefreshPlan) -> dict[int, TrackingUpdate]:
        """The updates of a planned refresh: its records read back and their quality
        scored again with their story's providers (any process with the store can do it)."""
        assert self.store is not None
        if not plan.live:  # most batches have no queued record about to leave the index
            return {}
        stored = self.store.scoring_records([key for key, *_ in plan.live])
        return {
            key: TrackingUpdate(
                key,
                heat=heat,
                related=related,
                quality=self._rescored(stored.get(key), providers, now=plan.now),
            )
            for key, heat, related, providers in plan.live
        }

    def _rescored(
        self, stored: Record | None, providers: int, *, now: datetime
    ) -> QualityUpdate | None:
        if stored is None or not stored.quality_reasons:
            return None  # imported scores are kept as given
        scored = self._scored(stored, now=now, providers=providers)
        return QualityUpdate(scored.quality, scored.quality_reasons, scored.is_published)

    def _story_index(self, now: datetime) -> StoryIndex:
        assert self.store is not None
        if self._index is not None:
            self._catch_up(self._index, now)
        else:
            self._seen_seq = self.store.link_sequence()
            self._index = StoryIndex(window=self.window, max_items=self.settings.stories.max_linked)
            self.rebuilds += 1
            self._rebuild(self._index, now)
        return self._index

    def _rebuild(self, index: StoryIndex, now: datetime) -> None:
        """Fill an empty index with the window's linked records, in their stored stories.

        Records stored but not linked (another job's batch waiting for the lock, or one
        whose process was killed between storing and linking) are kept aside: the batch
        that triggered the rebuild links and WRITES them with its own, after the stories
        above are back, so no record stays without a story and no process holds a story
        for a record that the store does not have."""
        self._unlinked = []
        for stored in self.store.iter_records(since=now - self.window) if self.store else ():
            if stored.story_id:
                item, when = _link_item(stored.id, stored.record), _when(stored.record, now)
                index.restore(item, stored.story_id, now=when)
            else:
                self._unlinked.append(stored)

    def _catch_up(self, index: StoryIndex, now: datetime) -> None:
        """Bring a kept index up to the stories other processes wrote: restore records it
        lacks, move those whose story changed (another process merged or split stories)."""
        assert self.store is not None
        current = self.store.link_sequence()
        if current == self._seen_seq:
            return
        for stored in self.store.linked_since(self._seen_seq, dated_since=now - self.window):
            story_id = stored.story_id or ""
            if stored.id not in index:
                item, when = _link_item(stored.id, stored.record), _when(stored.record, now)
                index.restore(item, story_id, now=when)
            else:
                index.move(stored.id, story_id)
        self._seen_seq = current


def _when(record: Record, now: datetime) -> datetime:
    return record.published or record.provenance.fetched_at or now


def _arrival_order(record: Record) -> tuple[datetime, str]:
    return (_when(record, datetime.min.replace(tzinfo=UTC)), record.web_url)


def record_features(record: Record) -> LinkFeatures:
    """The linking features of a record (those `_link_item` would compute)."""
    return link_features(record.title, record.excerpt, record.text, record.web_url)


def _features_by_key(
    ids: Mapping[str, int], records: Sequence[Record], features: Sequence[LinkFeatures]
) -> dict[int, LinkFeatures]:
    """Features by store key, the last record of a URL winning as in the batch."""
    if not features:
        return {}
    pairs = zip(records, features, strict=True)
    return {ids[r.web_url]: f for r, f in pairs if r.web_url in ids}


def _link_item(key: int, record: Record, features: LinkFeatures | None = None) -> LinkItem:
    return LinkItem(
        key=key,
        provider=record.provider.domain or record.provider.name,
        web_url=record.web_url,
        published=record.published,
        title=record.title,
        excerpt=record.excerpt,
        text=record.text,
        topics=record.topics,
        features=features,
    )
