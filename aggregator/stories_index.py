"""Online TF-IDF statistics and an inverted index with bounded posting lists.

Document frequencies count the items currently in the index (the story window), so the IDF
follows the news of the moment and memory stays bounded by the window. Each term's posting
list keeps only the `posting_cap` most recently added keys, and terms held by more than
`max_df_ratio` of the items are not used to find candidates: the work of finding candidates
for one item is at most `scan_budget` postings (rarest terms first), whatever the size of
the store.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter


@dataclass(frozen=True, slots=True)
class Vector:
    """A TF-IDF vector: each term's position, the weights in that order, and the norm.

    The weights are an array, not a dict of float objects (a third of the story index's
    memory); the positions are shared by the successive vectors of one item, whose terms
    never change. Iterating `positions` gives the terms in order.
    """

    positions: Mapping[str, int]
    weights: array[float]
    norm: float

    @classmethod
    def of(cls, weights: Mapping[str, float], norm: float) -> Vector:
        """A vector with these term weights (in their order) and norm."""
        positions = {term: index for index, term in enumerate(weights)}
        return cls(positions, array("d", weights.values()), norm)

    def items(self) -> Iterator[tuple[str, float]]:
        """(term, weight) pairs in order."""
        return zip(self.positions, self.weights, strict=True)

    def as_dict(self) -> dict[str, float]:
        """Term → weight."""
        return dict(self.items())

    def dot(self, other: Vector) -> float:
        """The dot product with another vector."""
        if len(self.positions) > len(other.positions):
            return other.dot(self)
        return _dot_with_vector(self.items(), other)

    def cosine_from(self, query: Mapping[str, float], query_norm: float) -> float:
        """The cosine of a query (term → weight, `query_norm`) with this vector: one dict
        for a query compared with many vectors."""
        if query_norm <= 0.0 or self.norm <= 0.0:
            return 0.0
        return self.dot_mapping(query) / (query_norm * self.norm)

    def dot_mapping(self, weights: Mapping[str, float]) -> float:
        """The dot product with a term → weight mapping."""
        if len(self.positions) <= len(weights):
            return _dot_with_mapping(self.items(), weights)
        return _dot_with_vector(weights.items(), self)


def _dot_with_mapping(pairs: Iterable[tuple[str, float]], weights: Mapping[str, float]) -> float:
    """Σ weight × weights[term] over (term, weight) `pairs`, the shorter side, in order."""
    get = weights.get
    dot = 0.0
    for term, weight in pairs:
        other = get(term)
        if other is not None:
            dot += weight * other
    return dot


def _dot_with_vector(pairs: Iterable[tuple[str, float]], vector: Vector) -> float:
    """Σ weight × vector[term] over (term, weight) `pairs`, the shorter side, in order."""
    get = vector.positions.get
    weights = vector.weights
    dot = 0.0
    for term, weight in pairs:
        index = get(term)
        if index is not None:
            dot += weight * weights[index]
    return dot


class TermIndex:
    """Decayed document frequencies and capped posting lists of the items in the window.

    Document frequencies decay by half every `half_life_docs` added documents, so the IDF
    follows the recent stream, is not starved when the window holds few items, and forgets
    old vocabulary: terms whose decayed frequency falls under `PRUNE_BELOW` are dropped in a
    sweep every `half_life_docs` additions (amortised constant work, bounded memory).

    Frequencies are stored scaled to the last sweep (`df = stored × decay`, one shared decay
    factor), so reading one is a lookup and a multiplication. Evicted keys leave their
    posting lists lazily: they are skipped while read, and dropped once at a list's front.

    Posting lists are plain lists trimmed from the front: most terms have a handful of
    keys, and a deque spends a 64-slot block (about 600 bytes) on even one.
    """

    PRUNE_BELOW = 0.25
    MIN_DF_CEILING = 50.0

    def __init__(
        self,
        *,
        posting_cap: int = 200,
        query_terms: int = 40,
        max_df_ratio: float = 0.2,
        half_life_docs: int = 5000,
        idf_power: float = 1.0,
        scan_budget: int = 2000,
    ) -> None:
        self.posting_cap = posting_cap
        self.query_terms = query_terms
        self.max_df_ratio = max_df_ratio
        self.half_life_docs = half_life_docs
        self.idf_power = idf_power
        self.scan_budget = scan_budget
        self.added = 0
        self._ratio = 0.5 ** (1.0 / half_life_docs)
        self._decay = 1.0  # ratio ** (added - added at the last sweep)
        self._df: dict[str, float] = {}  # frequencies scaled to the last sweep
        self._live: set[int] = set()
        self.postings: dict[str, list[int]] = {}

    @property
    def n_docs(self) -> float:
        """The decayed number of documents seen."""
        return float((1.0 - self._ratio**self.added) / (1.0 - self._ratio))

    def df(self, term: str) -> float:
        """The decayed document frequency of `term` (0.0 when unseen)."""
        return self._df.get(term, 0.0) * self._decay

    def add(self, key: int, terms: Iterable[str]) -> None:
        """Count an item's (distinct) terms and append its key to their posting lists."""
        self.added += 1
        self._decay *= self._ratio
        step = 1.0 / self._decay
        frequencies = self._df
        cap = self.posting_cap
        for term in terms:
            frequencies[term] = frequencies.get(term, 0.0) + step
            posting = self.postings.get(term)
            if posting is None:
                self.postings[term] = [key]
                continue
            posting.append(key)
            if len(posting) > cap:
                del posting[0]
        self._live.add(key)
        if self.added % self.half_life_docs == 0:
            self._sweep()

    def _sweep(self) -> None:
        """Rescale the stored frequencies to now and drop the ones decayed to nothing."""
        decay = self._decay
        self._df = {t: v * decay for t, v in self._df.items() if v * decay >= self.PRUNE_BELOW}
        self._decay = 1.0

    def remove(self, key: int, terms: Iterable[str]) -> None:
        """Drop an evicted item from its posting lists (frequencies just decay)."""
        self._live.discard(key)
        live = self._live
        for term in terms:
            posting = self.postings.get(term)
            if posting is None:
                continue
            first_live = next((i for i, other in enumerate(posting) if other in live), None)
            if first_live is None:
                del self.postings[term]
            elif first_live:
                del posting[:first_live]

    def idf(self, term: str) -> float:
        """BM25-style IDF (raised to `idf_power`), always positive; unseen counts as once."""
        df = max(1.0, self.df(term))
        return float(math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5)) ** self.idf_power)

    def vector(
        self, counts: Iterable[tuple[str, float]], positions: Mapping[str, int] | None = None
    ) -> Vector:
        """The TF-IDF vector of (distinct term, raw weighted count) pairs under the current
        statistics, in the order of `counts`; `positions`, when given, are those of an
        earlier vector of the same terms in the same order (kept, not rebuilt)."""
        n_docs = self.n_docs
        power = self.idf_power
        decay = self._decay
        frequencies = self._df
        terms: list[str] = []
        weights = array("d")
        for term, count in counts:
            df = frequencies.get(term, 0.0) * decay
            df = df if df > 1.0 else 1.0
            idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            tf = 1.0 + math.log(count) if count > 1.0 else count  # stories_features.tf_weight
            terms.append(term)
            weights.append(tf * (idf if power == 1.0 else idf**power))
        if positions is None:
            positions = {term: index for index, term in enumerate(terms)}
        return Vector(positions, weights, math.sqrt(sum(w * w for w in weights)))

    def candidates(self, key: int, vector: Vector, limit: int) -> list[int]:
        """Keys sharing significant terms with `vector`, best rough score first.

        Uses the `query_terms` heaviest terms whose document frequency is not too high,
        and only their capped posting lists, shortest (rarest) first, reading at most
        `scan_budget` postings in all: bounded work per call.
        """
        ceiling = max(self.MIN_DF_CEILING, self.max_df_ratio * self.n_docs) / self._decay
        frequencies = self._df
        usable = [(w, t) for t, w in vector.items() if frequencies.get(t, 0.0) <= ceiling]
        usable.sort(key=itemgetter(1))  # heaviest first, ties by term: a stable reverse
        usable.sort(key=itemgetter(0), reverse=True)  # sort keeps the term order of ties
        lists = [(w, self.postings.get(t, ())) for w, t in usable[: self.query_terms]]
        lists.sort(key=lambda wp: len(wp[1]))  # rarest first: the budget goes to specifics
        scores: dict[int, float] = {}
        get = scores.get
        budget = self.scan_budget
        for weight, posting in lists:
            budget -= len(posting)
            if budget < 0:
                break
            for other in posting:
                scores[other] = get(other, 0.0) + weight
        scores.pop(key, None)
        best = _top(scores, limit)
        live = self._live
        if any(other not in live for other, _ in best):  # an evicted key in the lead:
            for evicted in scores.keys() - live:  # rank the live ones alone
                del scores[evicted]
            best = _top(scores, limit)
        return [other for other, _ in best]


def _top(scores: dict[int, float], limit: int) -> list[tuple[int, float]]:
    """The `limit` best (key, score) pairs, ties in the order read: `heapq.nlargest`'s
    documented equivalent, whose sort runs in C (a few hundred scores: ~1.2x faster)."""
    return sorted(scores.items(), key=itemgetter(1), reverse=True)[:limit]
