"""The records, results and internal state the story index works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from aggregator.stories_index import Vector


@dataclass(frozen=True, slots=True)
class LinkItem:
    """What the linker needs to know about one record."""

    key: int
    provider: str
    web_url: str
    published: datetime | None
    title: str
    excerpt: str = ""
    text: str = ""
    topics: tuple[str, ...] = ()


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
    """An indexed item: its features, story, background and cached vector."""

    item: LinkItem
    time: datetime
    counts: dict[str, float]
    story: str
    entities: dict[str, float] = field(default_factory=dict)
    background: float = 0.0
    vector: Vector | None = None
    vector_at: int = -1


@dataclass(slots=True)
class Story:
    """A live story: members in join order, centroid, and the ids it absorbed."""

    id: str
    seq: int
    first_time: datetime
    members: list[int] = field(default_factory=list)
    centroid: dict[str, float] = field(default_factory=dict)
    absorbed: list[str] = field(default_factory=list)
