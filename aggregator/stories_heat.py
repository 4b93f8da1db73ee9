"""Story heat: distinct providers (log-scaled), speed of coverage, decay with age → 0–100.

    coverage = log2(1 + providers) / log2(1 + FULL_PROVIDERS)         capped at 1
    speed    = log2(1 + providers within FAST_HOURS of the first item)
               / log2(1 + FAST_PROVIDERS)                              capped at 1
    heat     = round(100 × (0.7 × coverage + 0.3 × speed) × 0.5 ** (age / HALF_LIFE))

`age` runs from the story's latest dated item to `now`. A story with no dated item has no
heat: -1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

FULL_PROVIDERS = 12
FAST_PROVIDERS = 6
FAST_HOURS = 6.0
HALF_LIFE_HOURS = 24.0
COVERAGE_SHARE = 0.7


def story_heat(
    coverage: Sequence[tuple[datetime | None, str]],
    *,
    now: datetime,
    half_life: timedelta = timedelta(hours=HALF_LIFE_HOURS),
) -> int:
    """Heat of a story from its members' (published, provider) pairs; -1 when undated."""
    dated = sorted((when, provider) for when, provider in coverage if when is not None)
    if not dated:
        return -1
    first = dated[0][0]
    latest = dated[-1][0]
    providers = {provider for _, provider in coverage}
    fast_cut = first + timedelta(hours=FAST_HOURS)
    fast = {provider for when, provider in dated if when <= fast_cut}
    breadth = min(1.0, math.log2(1 + len(providers)) / math.log2(1 + FULL_PROVIDERS))
    speed = min(1.0, math.log2(1 + len(fast)) / math.log2(1 + FAST_PROVIDERS))
    raw = COVERAGE_SHARE * breadth + (1.0 - COVERAGE_SHARE) * speed
    age_hours = max(0.0, (now - latest).total_seconds() / 3600.0)
    decay = 0.5 ** (age_hours / (half_life.total_seconds() / 3600.0))
    score: float = 100.0 * raw * decay
    return max(0, min(100, round(score)))
