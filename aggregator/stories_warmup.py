"""The warm-up check: joins made while the window statistics were cold are re-examined.

While the index has seen fewer than `warmup_docs` documents, IDF and entity rarity mean
little (every name looks rare among a few dozen items), so a join is provisional. When the
statistics mature, the stories holding provisional items are re-checked once:

    members → pairs linked under the matured statistics, by the join gate's own tests:
      - cosine ≥ `gate_ratio` × the larger background of the two (floored by the running
        background level), or
      - at least one shared entity that few other items carry
    → connected components; the largest keeps the story, every other component of at least
      `MIN_GROUP` items is split off into a story of its own.

A lone weakly linked item stays: splits need a group that agrees with itself, so real
coverage joined on thin evidence is not torn apart, while a cluster of another event that
chained in through one early mistake is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.stories import StoryIndex

MIN_GROUP = 2  # the smallest component split off a story
SCANNED_MEMBERS = 60  # at most this many latest members are re-checked per story


def linked(index: StoryIndex, a: int, b: int) -> bool:
    """True when items `a` and `b` look like one event under the current statistics."""
    floor = max(index.background(a), index.background(b), index.background_level)
    if index.similarity(a, b) >= index.gate_ratio * floor:
        return True
    stats = index.entity_stats
    limit = max(index.rare_df, index.rare_share * stats.n_docs)
    mine = index.entities(a)
    return any(ent in mine and stats.df(ent) - 2 <= limit for ent in index.entities(b))


def split_groups(index: StoryIndex, story_id: str) -> list[list[int]]:
    """Groups of members to split off `story_id` (largest component stays), join order."""
    members = index.member_keys(story_id)[-SCANNED_MEMBERS:]
    parent = {key: key for key in members}

    def root(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            if root(a) != root(b) and linked(index, a, b):
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for key in members:
        groups.setdefault(root(key), []).append(key)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), members.index(g[0])))
    return [group for group in ordered[1:] if len(group) >= MIN_GROUP]


def settle(index: StoryIndex, keys: list[int]) -> list[int]:
    """Re-check the stories of provisional `keys`; returns the keys that moved story."""
    for key in keys:
        index.refresh_background(key)
    moved: list[int] = []
    for story_id in dict.fromkeys(index.story_of(key) for key in keys):
        for group in split_groups(index, story_id):
            index.split(story_id, group)
            moved.extend(group)
    return moved
