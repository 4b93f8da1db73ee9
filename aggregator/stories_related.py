"""Related lists: same-story coverage from other providers first, then similar records.

    related(key)
      1. members of the record's story from other providers, one per provider,
         most similar first
      2. records that share a topic with it, are similar above `related_threshold`
         and lie within the window of its time, most similar first; candidates are the
         records the linker already compared it with (`StoryIndex.neighbours`), so no
         index search runs here
    never the record itself, never a webUrl twice (its own included), never the same
    story twice from the same provider (its own story and provider included), at most `limit`.

Lists are computed from the current index state, so they follow new coverage: re-query the
`touched_keys` an `add()` reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.stories import StoryIndex


def related_keys(index: StoryIndex, key: int, *, limit: int = 6) -> list[int]:
    """Up to `limit` keys related to `key`, best first."""
    if limit <= 0:
        return []
    own = index.item(key)
    story = index.story_of(key)
    seen_urls = {own.web_url}
    seen_pairs = {(story, own.provider)}
    chosen: list[int] = []
    members = [(index.similarity(key, m.key), m.key) for m in index.members(story) if m.key != key]
    _take_ranked(index, members, limit, chosen, seen_urls, seen_pairs)
    if len(chosen) < limit and own.topics:
        _take_ranked(index, _similar_by_topic(index, key), limit, chosen, seen_urls, seen_pairs)
    return chosen  # `_take_ranked` stops at `limit`


def _take_ranked(
    index: StoryIndex,
    scored: list[tuple[float, int]],
    limit: int,
    chosen: list[int],
    seen_urls: set[str],
    seen_pairs: set[tuple[str, str]],
) -> None:
    """`_take` each (similarity, key), most similar first (ties by key), until `limit`."""
    scored.sort(key=lambda so: (-so[0], so[1]))
    for _, other in scored:
        if len(chosen) >= limit:
            return
        _take(index, other, chosen, seen_urls, seen_pairs)


def _similar_by_topic(index: StoryIndex, key: int) -> list[tuple[float, int]]:
    """(similarity, key) of the neighbours sharing a topic, similar enough, within the
    window of the record."""
    own = index.item(key)
    topics = set(own.topics)
    when = index.entry_time(key)
    found: list[tuple[float, int]] = []
    for other in index.neighbours(key, index.candidate_limit):
        if other == key or topics.isdisjoint(index.item(other).topics):
            continue
        if abs(index.entry_time(other) - when) > index.window:
            continue
        similarity = index.similarity(key, other)
        if similarity >= index.related_threshold:
            found.append((similarity, other))
    return found


def _take(
    index: StoryIndex,
    other: int,
    chosen: list[int],
    seen_urls: set[str],
    seen_pairs: set[tuple[str, str]],
) -> None:
    """Append `other` unless its webUrl or its (story, provider) pair is already there."""
    item = index.item(other)
    pair = (index.story_of(other), item.provider)
    if item.web_url in seen_urls or pair in seen_pairs:
        return
    seen_urls.add(item.web_url)
    seen_pairs.add(pair)
    chosen.append(other)
