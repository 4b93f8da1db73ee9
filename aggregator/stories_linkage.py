"""Story scores for one new item: how strongly it links to each candidate story."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aggregator.stories_index import Vector
from aggregator.stories_types import Story


def story_scores(
    linkage: str,
    sims: dict[int, float],
    story_of: Callable[[int], str],
    stories: Mapping[str, Story],
    vector: Vector,
) -> dict[str, float]:
    """Score each candidate story by the configured linkage.

    single: best member's similarity; average: sum of similarities over the story's
    size (members that are not candidates count 0); centroid: cosine to the sum of the
    members' unit vectors; mixed: the mean of single and centroid.
    """
    best: dict[str, float] = {}
    total: dict[str, float] = {}
    for other, sim in sims.items():
        story = story_of(other)
        total[story] = total.get(story, 0.0) + sim
        best[story] = max(sim, best.get(story, sim))
    if linkage == "single":
        return best
    if linkage == "average":
        return {sid: total[sid] / len(stories[sid].members) for sid in total}
    scores: dict[str, float] = {}
    for sid, top in best.items():
        cen = stories[sid]
        norms = vector.norm * cen.centroid_norm()
        c = vector.dot_mapping(cen.centroid) / norms if norms > 0.0 else 0.0
        scores[sid] = c if linkage == "centroid" else 0.5 * (c + top)
    return scores
