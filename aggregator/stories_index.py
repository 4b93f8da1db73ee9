"""Online TF-IDF statistics and an inverted index with bounded posting lists.

Document frequencies count the items currently in the index (the story window), so the IDF
follows the news of the moment and memory stays bounded by the window. Each term's posting
list keeps only the `posting_cap` most recently added keys, and terms held by more than
`max_df_ratio` of the items are not used to find candidates: the work of finding candidates
for one item is at most `query_terms × posting_cap`, whatever the size of the store.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.stories_features import tf_weight


@dataclass(frozen=True, slots=True)
class Vector:
    """A TF-IDF vector and its Euclidean norm."""

    weights: dict[str, float]
    norm: float


class TermIndex:
    """Decayed document frequencies and capped posting lists of the items in the window.

    Document frequencies decay by half every `half_life_docs` added documents, so the IDF
    follows the recent stream, is not starved when the window holds few items, and forgets
    old vocabulary: terms whose decayed frequency falls under `PRUNE_BELOW` are dropped in a
    sweep every `half_life_docs` additions (amortised constant work, bounded memory).
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
    ) -> None:
        self.posting_cap = posting_cap
        self.query_terms = query_terms
        self.max_df_ratio = max_df_ratio
        self.half_life_docs = half_life_docs
        self.idf_power = idf_power
        self.added = 0
        self._ratio = 0.5 ** (1.0 / half_life_docs)
        self._df: dict[str, tuple[float, int]] = {}
        self.postings: dict[str, deque[int]] = {}

    @property
    def n_docs(self) -> float:
        """The decayed number of documents seen."""
        return float((1.0 - self._ratio**self.added) / (1.0 - self._ratio))

    def df(self, term: str) -> float:
        """The decayed document frequency of `term` (0.0 when unseen)."""
        entry = self._df.get(term)
        if entry is None:
            return 0.0
        return float(entry[0] * self._ratio ** (self.added - entry[1]))

    def add(self, key: int, counts: Mapping[str, float]) -> None:
        """Count an item's terms and append its key to their posting lists."""
        self.added += 1
        for term in counts:
            self._df[term] = (self.df(term) + 1.0, self.added)
            posting = self.postings.get(term)
            if posting is None:
                posting = self.postings[term] = deque(maxlen=self.posting_cap)
            posting.append(key)
        if self.added % self.half_life_docs == 0:
            self._prune()

    def _prune(self) -> None:
        for term in [t for t in self._df if self.df(t) < self.PRUNE_BELOW]:
            del self._df[term]

    def remove(self, key: int, counts: Mapping[str, float]) -> None:
        """Drop an evicted item from its posting lists (frequencies just decay)."""
        for term in counts:
            posting = self.postings.get(term)
            if posting is None:
                continue
            if posting and posting[0] == key:
                posting.popleft()
            elif key in posting:
                posting.remove(key)
            if not posting:
                del self.postings[term]

    def idf(self, term: str) -> float:
        """BM25-style IDF (raised to `idf_power`), always positive; unseen counts as once."""
        df = max(1.0, self.df(term))
        return float(math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5)) ** self.idf_power)

    def vector(self, counts: Mapping[str, float]) -> Vector:
        """The TF-IDF vector of raw weighted counts under the current statistics."""
        n_docs = self.n_docs
        power = self.idf_power
        weights: dict[str, float] = {}
        for term, count in counts.items():
            df = max(1.0, self.df(term))
            idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            weights[term] = tf_weight(count) * (idf if power == 1.0 else idf**power)
        return Vector(weights, math.sqrt(sum(w * w for w in weights.values())))

    def candidates(self, key: int, vector: Vector, limit: int) -> list[int]:
        """Keys sharing significant terms with `vector`, best rough score first.

        Uses the `query_terms` heaviest terms whose document frequency is not too high,
        and only the capped posting lists: bounded work per call.
        """
        ceiling = max(self.MIN_DF_CEILING, self.max_df_ratio * self.n_docs)
        usable = [(w, t) for t, w in vector.weights.items() if self.df(t) <= ceiling]
        usable.sort(key=lambda wt: (-wt[0], wt[1]))
        scores: dict[int, float] = {}
        for weight, term in usable[: self.query_terms]:
            for other in self.postings.get(term, ()):
                if other != key:
                    scores[other] = scores.get(other, 0.0) + weight
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [other for other, _ in ranked[:limit]]
