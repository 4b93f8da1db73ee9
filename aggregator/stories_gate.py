"""The corroboration gate: a weak textual match must be backed by rare shared specifics.

    join(item, story) below `merge_threshold` needs either
      - at least `gate_rare` entities of the item that the story mentions and that few items
        OUTSIDE the story mention (df outside ≤ max(rare_df, rare_share × documents)), or
      - a best-member cosine at least `gate_ratio` × the item's background similarity
        (the median similarity to its candidates, floored by the running background level,
        which starts at a conservative prior: IDF means little before the window fills).

Shared topic vocabulary makes different stories of one topic look alike; names, places and
figures that few other items carry are what identify one event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.stories import StoryIndex

SCANNED_MEMBERS = 50  # the latest members read per check: bounded work for big stories


def rare_shared(index: StoryIndex, key: int, story_id: str) -> int:
    """How many entities of item `key` the story mentions and few items outside it do."""
    mine = index.entities(key)
    inside: dict[str, int] = {}
    for member in index.member_keys(story_id)[-SCANNED_MEMBERS:]:
        for ent in index.entities(member):
            if ent in mine:
                inside[ent] = inside.get(ent, 0) + 1
    stats = index.entity_stats
    limit = max(index.rare_df, index.rare_share * stats.n_docs)
    return sum(1 for ent, n in inside.items() if stats.df(ent) - n - 1 <= limit)


def corroborated(index: StoryIndex, key: int, story_id: str) -> bool:
    """True when item `key` may join `story_id` on a score under the merge threshold."""
    if rare_shared(index, key, story_id) >= index.gate_rare:
        return True
    members = index.member_keys(story_id)[-SCANNED_MEMBERS:]
    raw = max((index.similarity(key, other) for other in members), default=0.0)
    floor = max(index.background(key), index.background_level)
    return raw >= index.gate_ratio * floor
