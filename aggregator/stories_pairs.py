"""A bounded cache of pair similarities between the items of the story window.

    put(a, b, sim)   when the linker compares two items (candidates of a new item, story
                     members, gate checks), the cosine is kept on both sides
    get(a, b)        the cached cosine while it is younger than `max_age` additions
    nearest(key, n)  the n most similar items compared with `key` so far: the candidates of
                     related lists, found without searching the index again
    forget(key)      an evicted or re-vectorised item leaves every list it is on

Each item keeps at most `per_entry` pairs: past that, its least similar half is dropped (on
both sides), so memory is bounded by the window and the work per call by `per_entry`.

A pair is stored as one complex number, the similarity its real part and the addition
count it was computed at its imaginary part (exact below 2**53): one 32-byte object shared
by both sides, where a (float, int) tuple took 80 bytes and three allocations.
"""

from __future__ import annotations

import heapq


class PairCache:
    """Cached cosine similarities keyed by item, stamped with the addition count."""

    def __init__(self, *, per_entry: int, max_age: int, floor: float = 0.0) -> None:
        self.per_entry = per_entry
        self.max_age = max_age
        self.floor = floor
        self._near: dict[int, dict[int, complex]] = {}

    def get(self, a: int, b: int, *, now: int) -> float | None:
        """The cached similarity of `a` and `b`, or None when absent or too old."""
        cached = self._near.get(a, {}).get(b)
        if cached is None or now - cached.imag > self.max_age:
            return None
        return cached.real

    def put(self, a: int, b: int, sim: float, *, now: int) -> None:
        """Remember the similarity of `a` and `b` on both sides (not under `floor`)."""
        if sim < self.floor:
            return
        stamp = complex(sim, now)
        for mine, other in ((a, b), (b, a)):
            near = self._near.setdefault(mine, {})
            near[other] = stamp
            if len(near) > self.per_entry:
                self._trim(mine, near)

    def _trim(self, key: int, near: dict[int, complex]) -> None:
        ranked = sorted(near.items(), key=lambda kv: (-kv[1].real, kv[0]))
        for other, _ in ranked[self.per_entry // 2 :]:
            del near[other]
            self._near.get(other, {}).pop(key, None)

    def nearest(self, key: int, limit: int) -> list[int]:
        """Up to `limit` keys most similar to `key` among those compared with it (ties by key)."""
        near = self._near.get(key, {})
        ranked = heapq.nlargest(limit, near.items(), key=lambda kv: (kv[1].real, -kv[0]))
        return [other for other, _ in ranked]

    def forget(self, key: int) -> None:
        """Drop every cached pair of `key`."""
        for other in self._near.pop(key, {}):
            partner = self._near.get(other)
            if partner is not None:
                partner.pop(key, None)

    def size(self, key: int) -> int:
        """How many pairs of `key` are cached."""
        return len(self._near.get(key, {}))

    def __len__(self) -> int:
        return len(self._near)
