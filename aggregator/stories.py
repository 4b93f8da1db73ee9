"""Stories: group records from different outlets that cover the same event, online.

    add(item, now) → evict items older than now - window      (memory bounded by the window)
      → weighted terms + entity-like tokens   (stories_prepare: precomputed on the item by
                                               a crawl worker, else computed here)
      → TF-IDF with online document frequencies, candidates from capped posting lists
        (rarest first, at most `scan_budget` postings read)
      → average-link score per candidate story, minus the item's background similarity
      → join the best story above `join_threshold` if corroborated (stories_gate: rare
        shared entities, or a match far above the background), or start a new one
      → stories scoring above `merge_threshold` merge; the oldest id survives
      → stories the item bridges merge too when, by their centroids (sums of member unit
        vectors), their members are about as alike across as within the looser story
        (`merge_cohesion`) and the item is corroborated in both
      → joins made before `warmup_docs` documents are provisional: when the statistics
        mature, groups that no longer hold together are split off (stories_warmup)

Every pair similarity computed is cached for both items (stories_pairs): related lists
take their candidates from that cache instead of searching the index again.

The index is an explicit state object: the pipeline rebuilds it after a restart by
`restore()`-ing the records of the window with their stored story ids, or by re-adding them
in the same order (same items in the same order give the same ids). Heat is in
`aggregator.stories_heat`; related lists in `aggregator.stories_related`.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from array import array
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from sys import intern
from typing import Literal

from aggregator.stories_features import cosine
from aggregator.stories_gate import corroborated
from aggregator.stories_heat import story_heat
from aggregator.stories_index import TermIndex, Vector
from aggregator.stories_linkage import story_scores
from aggregator.stories_pairs import PairCache
from aggregator.stories_prepare import features_of
from aggregator.stories_types import (
    CENTROID_EPSILON,
    AddResult,
    Entry,
    LinkFeatures,
    LinkItem,
    Story,
    unit_weights,
)
from aggregator.stories_warmup import settle

__all__ = ["AddResult", "LinkFeatures", "LinkItem", "StoryIndex"]

DEFAULT_WINDOW = timedelta(hours=72)
BACKGROUND_PRIOR = 0.1  # assumed background similarity before the window has statistics
BACKGROUND_RATE = 0.05  # how fast the running background level follows the stream
Linkage = Literal["single", "average", "centroid", "mixed"]
VECTOR_REFRESH = 1000  # recompute a cached TF-IDF vector after this many additions
NEAR_CAP = 4  # pair similarities cached per item, in units of `candidate_limit`


class StoryIndex:
    """Online story clustering over a sliding time window."""

    def __init__(
        self,
        *,
        window: timedelta = DEFAULT_WINDOW,
        join_threshold: float = 0.08,
        merge_threshold: float = 0.5,
        same_provider_factor: float = 0.85,
        related_threshold: float = 0.15,
        candidate_limit: int = 40,
        posting_cap: int = 200,
        scan_budget: int = 2000,
        idf_power: float = 1.0,
        linkage: Linkage = "average",
        background_weight: float = 1.5,
        ratio: float = 1.0,
        gate_rare: int = 2,
        gate_ratio: float = 4.0,
        rare_df: float = 0.0,
        rare_share: float = 0.01,
        warmup_docs: int = 200,
        merge_cohesion: float = 0.9,
        max_items: int | None = None,
    ) -> None:
        self.max_items = max_items
        self.merge_cohesion = merge_cohesion
        self.warmup_docs = warmup_docs
        self._provisional: list[int] | None = [] if warmup_docs > 0 else None
        self.gate_rare = gate_rare
        self.gate_ratio = gate_ratio
        self.background_level = BACKGROUND_PRIOR
        self.rare_df = rare_df
        self.rare_share = rare_share
        self.entity_stats = TermIndex(posting_cap=posting_cap)
        self.window = window
        self.join_threshold = join_threshold
        self.merge_threshold = merge_threshold
        self.same_provider_factor = same_provider_factor
        self.related_threshold = related_threshold
        self.candidate_limit = candidate_limit
        self.linkage = linkage
        self.background_weight = background_weight
        self.ratio = ratio
        self.terms = TermIndex(
            posting_cap=posting_cap, idf_power=idf_power, scan_budget=scan_budget
        )
        self._entries: dict[int, Entry] = {}
        self._stories: dict[str, Story] = {}
        self._aliases: dict[str, str] = {}
        self._by_url: dict[str, int] = {}
        self._expiry: list[tuple[datetime, int]] = []
        self._seq = 0
        self.pairs = PairCache(
            per_entry=NEAR_CAP * candidate_limit, max_age=VECTOR_REFRESH, floor=related_threshold
        )

    # ----------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def story_of(self, key: int) -> str:
        """The story id of an item in the index (KeyError when absent or evicted)."""
        return self._entries[key].story

    def members(self, story_id: str) -> list[LinkItem]:
        """The items of a story (old ids resolve), in the order they joined."""
        story = self._stories.get(self.resolve(story_id))
        if story is None:
            return []
        return [self._entries[key].item for key in story.members]

    def resolve(self, story_id: str) -> str:
        """The live id for `story_id`: itself, or the story that absorbed it."""
        return self._aliases.get(story_id, story_id)

    def aliases(self) -> dict[str, str]:
        """Absorbed story id → surviving story id, for stories still in the window."""
        return dict(self._aliases)

    def story_ids(self) -> list[str]:
        """The ids of live stories, oldest first."""
        return [s.id for s in sorted(self._stories.values(), key=lambda s: s.seq)]

    def heat(self, story_id: str, *, now: datetime) -> int:
        """Story heat 0–100 at `now`; -1 when the story is unknown or has no dated item."""
        story = self._stories.get(self.resolve(story_id))
        if story is None:
            return -1
        items = [self._entries[key].item for key in story.members]
        return story_heat([(i.published, i.provider) for i in items], now=now)

    def similarity(self, a: int, b: int) -> float:
        """Cosine similarity of two indexed items (TF-IDF vectors, refreshed periodically).

        Pairs are cached for `VECTOR_REFRESH` additions, the staleness cached vectors are
        allowed anyway (`aggregator.stories_pairs`).
        """
        cached = self.pairs.get(a, b, now=self.terms.added)
        if cached is not None:
            return cached
        va = self._vector(self._entries[a])
        vb = self._vector(self._entries[b])
        sim = va.dot(vb) / (va.norm * vb.norm) if va.norm > 0.0 and vb.norm > 0.0 else 0.0
        self.pairs.put(a, b, sim, now=self.terms.added)
        return sim

    def neighbours(self, key: int, limit: int) -> list[int]:
        """Up to `limit` keys most similar to `key` among those compared with it so far.

        These are the candidates found when either item was added, plus pairs compared
        since (story members, gate checks): no index search, bounded work.
        """
        return self.pairs.nearest(key, limit)

    def _vector(self, entry: Entry) -> Vector:
        """The entry's TF-IDF vector, recomputed when the statistics moved on enough."""
        if self.terms.added - entry.vector_at > VECTOR_REFRESH:
            self._revectorise(entry)
        return entry.vector

    def _revectorise(self, entry: Entry) -> None:
        """Recompute the entry's vector under the current statistics; what the old one
        added to the story's centroid is kept aside first, to be taken out exactly."""
        if entry.story and entry.in_centroid is None:
            entry.in_centroid = unit_weights(entry.vector)
        terms = entry.vector.positions
        entry.vector = self.terms.vector(zip(terms, entry.counts, strict=True), terms)
        entry.vector_at = self.terms.added

    def related(self, key: int, *, limit: int = 6) -> list[int]:
        """Up to `limit` related keys, best first (see `aggregator.stories_related`)."""
        from aggregator.stories_related import related_keys

        return related_keys(self, key, limit=limit)

    # ----------------------------------------------------------------- updates

    def add(
        self, item: LinkItem, *, now: datetime, evict_before: datetime | None = None
    ) -> AddResult:
        """Link one item into a story; returns the story id and what changed.

        Items older than `evict_before` (default: `now` - window) leave the index first. A
        caller whose items arrive out of order (a crawl, one source's batch after another's)
        passes the batch's oldest time minus the window, so an older item arriving after a
        newer one still meets the items of its own time."""
        if item.key in self._entries:
            story = self._entries[item.key].story
            return AddResult(story, touched_keys=(item.key,))
        self.evict_older_than(now - self.window if evict_before is None else evict_before)
        result = self._link(self._insert(item, now))
        if self._provisional is None:
            return result
        self._provisional.append(item.key)
        if self.terms.added < self.warmup_docs:
            return result
        return self._settle(item.key, result)

    def _link(self, entry: Entry) -> AddResult:
        """Join a freshly inserted entry to the best story, or start a new one."""
        vector = self._vector(entry)
        sims = self._candidate_sims(entry, vector)
        if self.linkage in ("centroid", "mixed"):
            for story_id in {self.story_of(other) for other in sims}:
                self._materialise(self._stories[story_id])
        scores = story_scores(self.linkage, sims, self.story_of, self._stories, vector)
        best = self._pick_story(entry, scores)
        if best is None:
            story_id = self._new_story(entry)
            return AddResult(story_id, touched_keys=self._touched(entry, sims, story_id))
        linked = {best} | {sid for sid, score in scores.items() if score >= self.merge_threshold}
        survivor, merged, moved = self._merge(linked)
        self._join(entry, survivor)
        converged = self._converged(survivor, scores, entry.item.key)
        if converged:
            survivor, more, also = self._merge({survivor, *converged})
            merged += more
            moved += also
        touched = self._touched(entry, sims, survivor)
        return AddResult(survivor, tuple(merged), tuple(moved), touched)

    def _settle(self, key: int, result: AddResult) -> AddResult:
        """The statistics matured: re-check the provisional joins (`stories_warmup`)."""
        keys = [k for k in self._provisional or () if k in self._entries]
        self._provisional = None
        moved = settle(self, keys)
        if not moved:
            return result
        touched = set(result.touched_keys)
        for story_id in {self._entries[k].story for k in keys}:
            touched.update(self._stories[story_id].members)
        moved_keys = tuple(sorted(set(result.moved_keys) | set(moved)))
        return AddResult(self.story_of(key), result.merged_from, moved_keys, tuple(sorted(touched)))

    def refresh_background(self, key: int) -> None:
        """Recompute an item's vector and background similarity under current statistics."""
        entry = self._entries[key]
        self._revectorise(entry)
        self.pairs.forget(key)
        self._candidate_sims(entry, entry.vector)

    def split(self, story_id: str, keys: list[int]) -> str:
        """Move `keys` out of `story_id` into a new story (id from the first); returns it."""
        story = self._stories[story_id]
        story.members = [k for k in story.members if k not in set(keys)]
        new_id = self._new_story(self._entries[keys[0]])
        for key in keys[1:]:
            self._join(self._entries[key], new_id)
        story.centroid = {}
        story.solo = None
        for key in story.members:
            self._add_to_centroid(story, self._entries[key])
        return new_id

    def restore(self, item: LinkItem, story_id: str, *, now: datetime) -> None:
        """Put an item back into a known story (rebuilding the index after a restart)."""
        if item.key in self._entries:
            return
        entry = self._insert(item, now)
        if self.terms.added >= self.warmup_docs:
            self._provisional = None  # restored stories past the warm-up are final
        story_id = self.resolve(story_id)
        if story_id not in self._stories:
            self._seq += 1
            self._stories[story_id] = Story(story_id, self._seq, entry.time)
        self._join(entry, story_id)

    def move(self, key: int, story_id: str) -> None:
        """Put an indexed item into `story_id` because another process decided so (its
        stored story changed). A story left empty becomes an alias of `story_id`."""
        entry = self._entries[key]
        target = self.resolve(story_id)
        if entry.story == target:
            return
        story = self._stories[entry.story]
        story.members.remove(key)
        self._take_out_of_centroid(story, entry)
        if not story.members:
            for alias in [story.id, *story.absorbed]:
                self._aliases[alias] = target
            del self._stories[story.id]
        if target not in self._stories:
            self._seq += 1
            self._stories[target] = Story(target, self._seq, entry.time)
        if not story.members:
            self._stories[target].absorbed.extend([story.id, *story.absorbed])
        self._join(entry, target)

    def evict_older_than(self, cutoff: datetime) -> None:
        """Forget items dated before `cutoff`, and stories left empty (with their aliases)."""
        while self._expiry and self._expiry[0][0] < cutoff:
            _, key = heapq.heappop(self._expiry)
            entry = self._entries.get(key)
            if entry is not None and entry.time < cutoff:  # not a re-added, later item
                self._evict(key)

    def leaving(self, keys: Collection[int], *, arriving: int, before: datetime) -> set[int]:
        """Those of `keys` that adding `arriving` items with ``evict_before=before`` may push
        out of the index: older than `before`, or among the earliest added past `max_items`.

        A crawl asks before each batch with all the keys it has queued; those are read
        only when some item is older than `before` (the expiry heap's first is the oldest),
        which a crawl of recent news seldom meets, so the question costs O(1), not O(keys).
        """
        entries = self._entries
        out: set[int] = set()
        if self._expiry and self._expiry[0][0] < before:
            out = {key for key in keys if key in entries and entries[key].time < before}
        if self.max_items is not None:
            excess = len(entries) + arriving - self.max_items
            if excess > 0:
                out.update(key for key in itertools.islice(entries, excess) if key in keys)
        return out

    def _make_room(self) -> None:
        """Forget the earliest-added items until one more fits under `max_items`.

        Insertion order, not date: the items of the batch being linked are the newest
        arrivals, so they keep meeting each other and are never pushed out by themselves.
        Their heap entries go stale and are skipped when their time comes."""
        if self.max_items is None:
            return
        while len(self._entries) >= self.max_items:
            self._evict(next(iter(self._entries)))

    def _evict(self, key: int) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.terms.remove(key, entry.terms())
        self.entity_stats.remove(key, entry.entities)
        self.pairs.forget(key)
        if self._by_url.get(entry.item.web_url) == key:
            del self._by_url[entry.item.web_url]
        story = self._stories[entry.story]
        story.members.remove(key)
        self._take_out_of_centroid(story, entry)
        if not story.members:
            for alias in story.absorbed:
                self._aliases.pop(alias, None)
            del self._stories[story.id]

    # ----------------------------------------------------------------- internals

    def _insert(self, item: LinkItem, now: datetime) -> Entry:
        when = now if item.published is None else min(item.published, now)
        features = features_of(item)
        self._make_room()
        # interned names and shared weights: one object per term and value, not per record
        counts = {intern(term): weight for term, weight in features.terms}
        ents = {intern(name): _shared(weight) for name, weight in features.entities}
        self.terms.add(item.key, counts)
        entry = Entry(
            _slim(item),
            when,
            _compact(counts.values()),
            self.terms.vector(counts.items()),
            self.terms.added,
            entities=ents,
        )
        self._entries[item.key] = entry
        self.entity_stats.add(item.key, ents)
        self._by_url.setdefault(item.web_url, item.key)
        heapq.heappush(self._expiry, (when, item.key))
        return entry

    def _candidate_sims(self, entry: Entry, vector: Vector) -> dict[int, float]:
        """Cosine similarity to candidates within the window of the item's time."""
        sims: dict[int, float] = {}
        query = vector.as_dict()
        for other in self.terms.candidates(entry.item.key, vector, self.candidate_limit):
            cand = self._entries[other]
            if abs(cand.time - entry.time) > self.window:
                continue
            sim = self._vector(cand).cosine_from(query, vector.norm)
            self.pairs.put(entry.item.key, other, sim, now=self.terms.added)
            if cand.item.provider == entry.item.provider:
                sim *= self.same_provider_factor
            sims[other] = sim
        ranked = sorted(sims.values(), reverse=True)
        ranked += [0.0] * (self.candidate_limit - len(ranked))
        entry.background = ranked[len(ranked) // 2]
        self.background_level += BACKGROUND_RATE * (entry.background - self.background_level)
        if self.background_weight:
            bw = self.background_weight
            for other in sims:
                bg = 0.5 * (entry.background + self._entries[other].background)
                sims[other] = sims[other] - bw * bg
        return sims

    def _converged(self, story_id: str, scores: dict[str, float], key: int) -> list[str]:
        """Candidate stories to merge into `story_id` now that item `key` joined it.

        A story qualifies when the item scored above `join_threshold` against it and is
        corroborated in it (`stories_gate`), and the two stories are cohesive together:
        the new item bridged two halves of one event.
        """
        story = self._stories[story_id]
        close = []
        for other_id, score in scores.items():
            other = self._stories.get(other_id)
            if other is None or other_id == story_id or score < self.join_threshold:
                continue
            if self._cohesive(story, other) and corroborated(self, key, other_id):
                close.append(other_id)
        return close

    def _cohesive(self, a: Story, b: Story) -> bool:
        """True when members of `a` and `b` are about as alike as those of the looser one.

        The mean cross-story similarity must reach `merge_cohesion` × the smaller of the
        two stories' mean within-story similarities (from their centroids; a single-item
        story has none, so at least one side needs two members).
        """
        looser = min(a.cohesion(), b.cohesion())
        if looser == float("inf"):
            return False
        cross = cosine(self._centroid(a), self._centroid(b), 1.0, 1.0)
        cross /= len(a.members) * len(b.members)
        return cross >= self.merge_cohesion * looser

    def _pick_story(self, entry: Entry, scores: dict[str, float]) -> str | None:
        """The story to join: same webUrl first, else the best story passing the thresholds.

        A best score under `merge_threshold` must also beat `ratio` × the runner-up (the
        second story, or the item's background similarity).
        """
        duplicate = self._by_url.get(entry.item.web_url, entry.item.key)
        if duplicate != entry.item.key:
            return self._entries[duplicate].story
        if not scores:
            return None
        story, score = min(scores.items(), key=lambda kv: (-kv[1], self._stories[kv[0]].seq))
        if score < self.join_threshold:
            return None
        if score < self.merge_threshold and not corroborated(self, entry.item.key, story):
            return None
        if score < self.merge_threshold:
            runner_up = max([sc for sid, sc in scores.items() if sid != story], default=0.0)
            if score < self.ratio * max(runner_up, entry.background):
                return None
        return story

    def member_keys(self, story_id: str) -> list[int]:
        """The keys of a live story's members, in the order they joined."""
        return list(self._stories[story_id].members)

    def background(self, key: int) -> float:
        """The item's median similarity to its candidates when it was added."""
        return self._entries[key].background

    def entities(self, key: int) -> dict[str, float]:
        """The entity-like tokens of an indexed item (see `aggregator.stories_entities`)."""
        return self._entries[key].entities

    def _new_story(self, entry: Entry) -> str:
        story_id = _story_id(entry.item.web_url)
        salt = 0
        while story_id in self._stories or story_id in self._aliases:
            salt += 1
            story_id = _story_id(f"{entry.item.web_url}\n{entry.item.key}\n{salt}")
        self._seq += 1
        self._stories[story_id] = Story(story_id, self._seq, entry.time)
        self._join(entry, story_id)
        return story_id

    def _join(self, entry: Entry, story_id: str) -> None:
        story = self._stories[story_id]
        entry.story = story_id
        story.members.append(entry.item.key)
        story.first_time = min(story.first_time, entry.time)
        self._add_to_centroid(story, entry)

    def _add_to_centroid(self, story: Story, entry: Entry) -> None:
        vector = self._vector(entry)
        entry.in_centroid = None  # the unit weights of `vector`, until it is refreshed
        key = entry.item.key
        if story.solo is None and not story.centroid and story.members == [key]:
            story.solo = key  # its unit weights are the centroid until a second one joins
            return
        self._materialise(story)
        story.add_vector(vector)

    def _materialise(self, story: Story) -> None:
        """Give a one-member story the centroid its member's unit weights stood in for."""
        if story.solo is None:
            return
        entry = self._entries[story.solo]
        story.solo = None
        share = entry.centroid_share()
        if share is not None:
            story.take_in(entry.terms(), share)

    def _centroid(self, story: Story) -> dict[str, float]:
        """The story's centroid, built (not kept) for a one-member story."""
        if story.solo is None:
            return story.centroid
        entry = self._entries[story.solo]
        share = entry.centroid_share()
        if share is None:
            return {}
        units = zip(entry.terms(), share, strict=True)
        return {term: unit for term, unit in units if abs(unit) > CENTROID_EPSILON}

    @staticmethod
    def _take_out_of_centroid(story: Story, entry: Entry) -> None:
        if story.solo == entry.item.key:
            story.solo = None  # it was all the centroid there was
            return
        share = entry.centroid_share()
        if share is not None:
            story.take_out(entry.terms(), share)

    def _merge(self, linked: Iterable[str]) -> tuple[str, list[str], list[int]]:
        """Merge stories into the oldest; returns (survivor, absorbed ids, moved keys)."""
        ordered = sorted((self._stories[s] for s in linked), key=lambda s: (s.first_time, s.seq))
        survivor = ordered[0]
        merged: list[str] = []
        moved: list[int] = []
        for story in ordered[1:]:
            for key in story.members:
                self._entries[key].story = survivor.id
            moved.extend(story.members)
            survivor.members.extend(story.members)
            self._materialise(survivor)
            self._materialise(story)
            survivor.absorb_centroid(story)
            survivor.first_time = min(survivor.first_time, story.first_time)
            for alias in [story.id, *story.absorbed]:
                self._aliases[alias] = survivor.id
                survivor.absorbed.append(alias)
            merged.append(story.id)
            del self._stories[story.id]
        return survivor.id, merged, moved

    def _touched(self, entry: Entry, sims: dict[int, float], story_id: str) -> tuple[int, ...]:
        """The new item, its story's members, and topic-sharing items similar enough."""
        keys = set(self._stories[story_id].members)
        topics = set(entry.item.topics)
        for other, sim in sims.items():
            if sim >= self.related_threshold and topics & set(self._entries[other].item.topics):
                keys.add(other)
        return tuple(sorted(keys))

    def entry_time(self, key: int) -> datetime:
        """The time an item counts at in the window (published, or when it was added)."""
        return self._entries[key].time

    def item(self, key: int) -> LinkItem:
        """The indexed item for `key`."""
        return self._entries[key].item

    def candidate_keys(self, key: int) -> list[int]:
        """Keys sharing significant terms with item `key` (bounded list, rough order)."""
        vector = self._vector(self._entries[key])
        return self.terms.candidates(key, vector, self.candidate_limit)


def _story_id(seed: str) -> str:
    return "s-" + hashlib.sha1(seed.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def _slim(item: LinkItem) -> LinkItem:
    """`item` without its text and features: once an entry holds its term counts, they are
    never read again, and keeping them would hold every window record's body in memory."""
    if not (item.excerpt or item.text or item.features):
        return item
    return replace(item, excerpt="", text="", features=None)


def _compact(values: Iterable[float]) -> array[float]:
    """The values as single-precision floats when that loses nothing, as weighted counts
    usually are (sums of a few field weights); else as doubles."""
    doubles = array("d", values)
    singles = array("f", doubles)
    return singles if singles.tolist() == doubles.tolist() else doubles


_FLOATS: dict[float, float] = {}


def _shared(weight: float) -> float:
    """One float object per weight value: weighted counts take few distinct values (sums
    of the field weights), so the window's entries share them instead of holding a
    million copies."""
    shared = _FLOATS.get(weight)
    if shared is not None:
        return shared
    if len(_FLOATS) < 65_536:
        _FLOATS[weight] = weight
    return weight
