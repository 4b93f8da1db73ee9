#!/usr/bin/env python3
"""Cost of adding one record to the story index at 10k, 100k (and 1M) records added.

Usage: python bench/bench_linking_cost.py [--max 1000000] [--rate-seconds 30] [--sample 2000]

Synthetic records (Zipf-distributed vocabulary, stories of 1–6 outlets, 500 providers, 20
topics) arrive one every `--rate-seconds` of simulated time, so the 72 h window evicts as the
store grows. At each checkpoint `--sample` further records are added, each followed by
`related()` for its `touched_keys` as the pipeline does, and the mean cost per record is
printed: CPU time of `add()` alone and of add + related (process CPU time, so that other
load on a shared machine does not count), then wall time, and the ratio of add's CPU time to
the 10k figure. The ratio must stay under 1.5: no step depends on the number of records
stored. Record generation is excluded.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.stories import LinkItem, StoryIndex

START = datetime(2025, 1, 1, tzinfo=UTC)
VOCAB = [f"w{i}" for i in range(50_000)]
NAMES = [f"Name{i}" for i in range(20_000)]
ZIPF = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(VOCAB))))


class Stream:
    """A deterministic stream of synthetic records."""

    def __init__(self, seed: int, rate: timedelta) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.count = 0
        self.story: list[str] = []
        self.left = 0

    def _words(self, n: int) -> list[str]:
        return self.rng.choices(VOCAB, cum_weights=ZIPF, k=n)

    def next(self) -> LinkItem:
        """The next record; consecutive records share a story's names and key words."""
        if self.left == 0:
            self.left = self.rng.choice([1, 1, 2, 3, 4, 6])
            self.story = self.rng.sample(NAMES, 3) + self._words(6)
        self.left -= 1
        key = self.count
        self.count += 1
        names, keys = self.story[:3], self.story[3:]
        title = " ".join([names[0], *keys[:3], *self._words(3)])
        excerpt = " ".join([*self._words(8), names[1], *keys[3:], names[2], *self._words(10)])
        text = ". ".join(" ".join([*self._words(12), self.rng.choice(keys)]) for _ in range(8))
        return LinkItem(
            key=key,
            provider=f"p{self.rng.randrange(500)}.example",
            web_url=f"https://p.example/{key}",
            published=START + self.rate * key,
            title=title,
            excerpt=excerpt,
            text=text,
            topics=(f"t{self.rng.randrange(20)}",),
        )


@dataclass(frozen=True)
class Cost:
    """Mean microseconds per record: add() CPU, add + related CPU, add + related wall."""

    add_cpu: float
    total_cpu: float
    total_wall: float


def measure(index: StoryIndex, stream: Stream, sample: int) -> Cost:
    """Mean cost per record over `sample` records, each add followed by its related lists."""
    items = [stream.next() for _ in range(sample)]
    add_cpu = related_cpu = 0.0
    wall = time.perf_counter()
    for item in items:
        assert item.published is not None
        started = time.process_time()
        result = index.add(item, now=item.published)
        added = time.process_time()
        for key in result.touched_keys:
            index.related(key, limit=6)
        related_cpu += time.process_time() - added
        add_cpu += added - started
    wall = time.perf_counter() - wall
    per = 1e6 / sample
    return Cost(add_cpu * per, (add_cpu + related_cpu) * per, wall * per)


def main(argv: list[str] | None = None) -> int:
    """Fill the index to each checkpoint and print the per-add cost."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max", type=int, default=100_000)
    ap.add_argument("--rate-seconds", type=float, default=30.0)
    ap.add_argument("--sample", type=int, default=2000)
    args = ap.parse_args(argv)
    checkpoints = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max]
    stream = Stream(1, timedelta(seconds=args.rate_seconds))
    index = StoryIndex()
    base: float | None = None
    header = ("added", "in window", "postings", "add cpu us", "+related", "wall us", "ratio")
    print("".join(f"{h:>11}" for h in header))
    for target in checkpoints:
        while stream.count < target:
            item = stream.next()
            assert item.published is not None
            index.add(item, now=item.published)
        cost = measure(index, stream, args.sample)
        base = base or cost.add_cpu
        row = (target, len(index), len(index.terms.postings))
        timings = (cost.add_cpu, cost.total_cpu, cost.total_wall)
        print("".join(f"{n:>11}" for n in row), end="")
        print("".join(f"{t:>11.1f}" for t in timings), f"{cost.add_cpu / base:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
