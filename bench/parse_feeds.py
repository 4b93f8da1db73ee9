#!/usr/bin/env python3
"""Time `parse_feed` on a generated corpus: feedparser only vs. the lxml fast path.

Usage: PYTHONPATH=. python bench/parse_feeds.py [CORPUS_DIR] [--reps N]

CORPUS_DIR holds oK/feed.xml files (bench/gen_corpus.py output; default
/tmp/ab-full/corpus-f200-i30-s1-p8089). Both modes run interleaved, N repetitions each, and
the medians are printed with the per-entry cost and how many feeds took the fast path.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from aggregator import feeds

DEFAULT = Path("/tmp/ab-full/corpus-f200-i30-s1-p8089")


def _run(bodies: list[tuple[str, bytes]], fast: bool) -> tuple[float, int]:
    started = time.perf_counter()
    entries = sum(len(feeds.parse_feed(body, url=url, fast=fast).entries) for url, body in bodies)
    return time.perf_counter() - started, entries


def _fast_count(bodies: list[tuple[str, bytes]]) -> int:
    taken = 0
    for url, body in bodies:
        text, _ = feeds._decode(body, None)
        taken += feeds.feeds_fast.parse(text.lstrip("\ufeff \t\r\n"), url) is not None
    return taken


def main() -> None:
    """Print median seconds for both modes over the corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("o*/feed.xml"))
    bodies = [(f"http://bench.example/{p.parent.name}/feed.xml", p.read_bytes()) for p in paths]
    times: dict[bool, list[float]] = {False: [], True: []}
    entries = 0
    for _ in range(args.reps):
        for fast in (False, True):
            seconds, entries = _run(bodies, fast)
            times[fast].append(seconds)
    print(f"aggregator from {Path(feeds.__file__).parent}")
    print(f"{len(bodies)} feeds, {entries} entries, {args.reps} interleaved repetitions")
    print(f"fast path taken by {_fast_count(bodies)}/{len(bodies)} feeds")
    for fast, label in ((False, "feedparser"), (True, "fast path ")):
        median = statistics.median(times[fast])
        spread = f"min {min(times[fast]):.3f} max {max(times[fast]):.3f}"
        per_entry = median / entries * 1e3
        print(f"{label}: median {median:.3f} s ({spread}), {per_entry:.3f} ms/entry")
    print(f"speed-up: {statistics.median(times[False]) / statistics.median(times[True]):.1f}x")


if __name__ == "__main__":
    main()
