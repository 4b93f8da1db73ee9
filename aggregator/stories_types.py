"""The records, results and internal state the story index works with."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.models import pickled_by_fields
from aggregator.stories_index import Vector

CENTROID_EPSILON = 1e-9  # centroid weights this close to zero (members evicted) are dropped


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class LinkFeatures:
    """An item's linking features, computed once from its text (`stories_prepare`).

    Weighted terms and entity-like tokens as (name, weight) pairs in extraction order:
    frozen and compact, so a worker process can compute them and pickle them over.
    """

    terms: tuple[tuple[str, float], ...]
    entities: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class LinkItem:
    """What the linker needs to know about one record.

    `features`, when given, must be `stories_prepare.link_features` of this item's text
    (computed elsewhere, e.g. in a crawl worker); when absent the index computes them.
    """

    key: int
    provider: str
    web_url: str
    published: datetime | None
    title: str
    excerpt: str = ""
    text: str = ""
    topics: tuple[str, ...] = ()
    features: LinkFeatures | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AddResult:
    """The outcome of `StoryIndex.add`.

    `merged_from`: story ids absorbed into `story_id` by this add (rewrite them in storage);
    `moved_keys`: keys whose story id changed because of those merges, or because the
    warm-up check split them off into a story of their own (look up `story_of(key)`);
    `touched_keys`: keys whose heat or related list may have changed (re-query them).
    """

    story_id: str
    merged_from: tuple[str, ...] = ()
    moved_keys: tuple[int, ...] = ()
    touched_keys: tuple[int, ...] = ()


@dataclass(slots=True)
class Entry:
    """An indexed item: its term counts, story, background and TF-IDF vector.

    The terms are the keys of `vector.positions`; `counts` holds their raw weighted counts
    in the same order, as a compact array (a second dict of the same terms would cost
    three times as much). The vector is refreshed as statistics move on
    (`StoryIndex._vector`), keeping its order.

    `in_centroid` is what the item added to its story's centroid, to take out again when
    the item is evicted or moved: None while that is still the unit weights of `vector`
    (the common case, which then costs nothing), else a snapshot taken before the vector
    was refreshed, in the same term order.
    """

    item: LinkItem
    time: datetime
    counts: array[float]
    vector: Vector
    vector_at: int
    story: str = ""
    entities: dict[str, float] = field(default_factory=dict)
    background: float = 0.0
    in_centroid: array[float] | None = None

    def terms(self) -> Iterable[str]:
        """The item's distinct terms, in extraction order."""
        return self.vector.positions.keys()

    def centroid_share(self) -> array[float] | None:
        """The unit weights this item added to its story's centroid (None: nothing)."""
        if self.in_centroid is not None:
            return self.in_centroid
        return unit_weights(self.vector)


@dataclass(slots=True)
class Story:
    """A live story: members in join order, centroid, and the ids it absorbed.

    The centroid is the sum of the unit vectors of the members in the window. While the
    story has one member, `solo` is that member's key and `centroid` stays empty: the
    member's own unit weights stand in for it (`StoryIndex` builds it when a second
    member joins), since most stories never get a second one.
    """

    id: str
    seq: int
    first_time: datetime
    members: list[int] = field(default_factory=list)
    centroid: dict[str, float] = field(default_factory=dict)
    absorbed: list[str] = field(default_factory=list)
    solo: int | None = None
    _norm: float | None = None

    def add_vector(self, vector: Vector, sign: float = 1.0) -> None:
        """Add (or with `sign` -1, take out) a member's unit vector to the centroid."""
        if vector.norm <= 0.0:
            return
        scale = sign / vector.norm
        self._shift((term, weight * scale) for term, weight in vector.items())

    def take_in(self, terms: Iterable[str], units: Iterable[float]) -> None:
        """Add a member's `unit_weights`, in its term order: what `add_vector` adds."""
        self._shift(zip(terms, units, strict=True))

    def take_out(self, terms: Iterable[str], units: Iterable[float]) -> None:
        """Take a member's contribution (`unit_weights` of its vector, in its term order)
        back out of the centroid: exactly what `add_vector(vector, -1.0)` would do."""
        self._shift((term, -unit) for term, unit in zip(terms, units, strict=True))

    def _shift(self, deltas: Iterable[tuple[str, float]]) -> None:
        centroid = self.centroid
        for term, delta in deltas:
            value = centroid.get(term, 0.0) + delta
            if abs(value) > CENTROID_EPSILON:
                centroid[term] = value
            else:
                centroid.pop(term, None)
        self._norm = None

    def absorb_centroid(self, other: Story) -> None:
        """Add another story's centroid to this one (a merge)."""
        for term, weight in other.centroid.items():
            self.centroid[term] = self.centroid.get(term, 0.0) + weight
        self._norm = None

    def cohesion(self) -> float:
        """Mean cosine between two different members (inf for a single-member story).

        The centroid is a sum of unit vectors, so |c|² = n + Σ over ordered pairs of
        their cosines.
        """
        n = len(self.members)
        if n < 2:
            return float("inf")
        return (self.centroid_norm() ** 2 - n) / (n * (n - 1))

    def centroid_norm(self) -> float:
        """The Euclidean norm of the centroid (cached until it changes)."""
        if self._norm is None:
            self._norm = math.sqrt(sum(w * w for w in self.centroid.values()))
        return self._norm


def unit_weights(vector: Vector) -> array[float] | None:
    """The vector's weights divided by its norm, in its term order (None when empty);
    the same products `Story.add_vector` adds, so `Story.take_out` undoes it exactly."""
    if vector.norm <= 0.0:
        return None
    scale = 1.0 / vector.norm
    return array("d", [weight * scale for weight in vector.weights])
