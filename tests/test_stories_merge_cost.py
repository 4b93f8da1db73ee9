"""Story merges by centroid cohesion, the pair-similarity cache and bounded candidate work."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.stories import LinkItem, StoryIndex
from aggregator.stories_index import TermIndex, Vector
from aggregator.stories_pairs import PairCache

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

QUAKE = [
    (
        "Magnitude 6.8 earthquake strikes Valparaiso region in Chile",
        "A powerful earthquake of magnitude 6.8 shook the Valparaiso region of Chile, toppling "
        "buildings in Viña del Mar and cutting power to 400,000 homes, officials said.",
    ),
    (
        "Chile earthquake: 6.8 quake hits Valparaiso, power cut to 400,000 homes",
        "The 6.8 magnitude quake struck near Valparaiso, Chile. Buildings collapsed in Viña del "
        "Mar and emergency services said 400,000 homes lost power after the earthquake.",
    ),
    (
        "Valparaiso quake: Viña del Mar buildings collapse, 400,000 without power",
        "Rescuers searched collapsed buildings in Viña del Mar after the 6.8 earthquake near "
        "Valparaiso left 400,000 homes in Chile without power.",
    ),
    (
        "Chile counts damage after 6.8 Valparaiso earthquake",
        "Chile's government counted collapsed buildings in Viña del Mar and Valparaiso after "
        "the magnitude 6.8 earthquake; power returned to most of the 400,000 homes.",
    ),
]
BRIDGE = (
    "Valparaiso earthquake of magnitude 6.8: Chile, Viña del Mar and 400,000 homes",
    "The 6.8 earthquake in the Valparaiso region of Chile collapsed buildings in Viña del Mar "
    "and cut power to 400,000 homes; the quake shook Chile's coast.",
)
FILLERS = [
    ("Museum opens new gallery of Flemish tapestries", "The Ghent museum unveiled tapestries."),
    ("Bakery chain recalls sourdough over labelling", "Loaves sold in Leeds lacked labels."),
    ("Volcano observatory raises alert on Etna", "Scientists in Catania reported ash."),
    ("Chess prodigy wins Reykjavik open tournament", "The 14-year-old beat grandmasters."),
    ("Rovers sign Brazilian striker Teixeira for £18m", "Harbour Rovers completed a signing."),
    ("Parliament approves Lisbon transport budget", "Lawmakers approved the metro budget."),
]


def item(key: int, content: tuple[str, str], *, hours: float = 0.0) -> LinkItem:
    """A LinkItem from its own provider, published `hours` after T0."""
    return LinkItem(
        key=key,
        provider=f"p{key}.example",
        web_url=f"https://p{key}.example/{key}",
        published=T0 + timedelta(hours=hours),
        title=content[0],
        excerpt=content[1],
        text=content[1],
        topics=("World",),
    )


def split_event(**kwargs: object) -> StoryIndex:
    """One event restored as two stories of two reports each (as if linked apart)."""
    index = StoryIndex(merge_threshold=2.0, **kwargs)  # type: ignore[arg-type]
    for n, content in enumerate(FILLERS):
        index.add(item(900 + n, content, hours=-1), now=T0)
    for key, story in ((1, "s-first"), (2, "s-first"), (3, "s-second"), (4, "s-second")):
        index.restore(item(key, QUAKE[key - 1], hours=key / 10), story, now=T0)
    return index


def test_two_stories_merge_when_a_bridging_item_makes_them_cohesive() -> None:
    index = split_event()
    result = index.add(item(5, BRIDGE, hours=1), now=T0 + timedelta(hours=1))
    assert result.story_id == "s-first"
    assert result.merged_from == ("s-second",)
    assert set(result.moved_keys) == {3, 4}
    assert {1, 2, 3, 4, 5} <= set(result.touched_keys)


def test_no_cohesion_merge_when_disabled() -> None:
    index = split_event(merge_cohesion=float("inf"))
    result = index.add(item(5, BRIDGE, hours=1), now=T0 + timedelta(hours=1))
    assert result.merged_from == ()
    assert {index.story_of(1), index.story_of(3)} == {"s-first", "s-second"}


def test_nothing_dangles_after_a_merge() -> None:
    index = split_event()
    index.add(item(5, BRIDGE, hours=1), now=T0 + timedelta(hours=1))
    assert index.aliases() == {"s-second": "s-first"}
    assert "s-second" not in index.story_ids()
    assert sorted(m.key for m in index.members("s-second")) == [1, 2, 3, 4, 5]
    assert all(index.story_of(key) == "s-first" for key in range(1, 6))
    for key in range(1, 6):
        assert index.related(key)  # every member still has coverage to point at
    index.evict_older_than(T0 + timedelta(hours=5))
    assert len(index) == 0 and index.story_ids() == [] and index.aliases() == {}
    assert len(index.pairs) == 0
    assert index.terms.postings == {}


def test_eviction_takes_a_member_out_of_its_story_centroid() -> None:
    index = StoryIndex(window=timedelta(hours=10), merge_threshold=2.0)
    later = T0 + timedelta(hours=9)
    for key, hours in ((1, 0), (2, 1), (3, 8)):
        index.restore(item(key, QUAKE[key - 1], hours=hours), "s-q", now=later)
    only_first = set(index._entries[1].terms())
    only_first -= set(index._entries[2].terms()) | set(index._entries[3].terms())
    story = index._stories["s-q"]
    assert only_first & set(story.centroid)
    index.evict_older_than(T0 + timedelta(minutes=30))
    assert story.members == [2, 3]
    assert not only_first & set(story.centroid)
    assert story.cohesion() == pytest.approx(index.similarity(2, 3))  # two members: their cosine


def test_cohesion_is_the_mean_pairwise_cosine() -> None:
    index = StoryIndex(merge_threshold=2.0)
    for key in (1, 2, 3):
        index.restore(item(key, QUAKE[key - 1]), "s-q", now=T0)
    story = index._stories["s-q"]
    pairs = [index.similarity(a, b) for a, b in ((1, 2), (1, 3), (2, 3))]
    assert story.cohesion() == pytest.approx(sum(pairs) / 3)


# ----------------------------------------------------------------- bounded work


def test_candidates_read_rare_lists_first_and_stop_at_the_budget() -> None:
    terms = TermIndex(scan_budget=10)
    for key in range(30):
        terms.add(key, {"common": 1.0, f"own{key}": 1.0})
    terms.add(100, {"common": 1.0, "rare": 1.0})
    query = Vector.of({"common": 1.0, "rare": 5.0}, 1.0)
    assert terms.candidates(-1, query, 40) == [100]
    roomy = TermIndex(scan_budget=1000)
    for key in range(30):
        roomy.add(key, {"common": 1.0, f"own{key}": 1.0})
    roomy.add(100, {"common": 1.0, "rare": 1.0})
    found = roomy.candidates(-1, query, 40)
    assert found[0] == 100 and len(found) == 31


def test_candidates_are_capped_by_limit_and_skip_evicted_keys() -> None:
    terms = TermIndex()
    for key in range(50):
        terms.add(key, {"shared": 1.0})
    for key in range(10):
        terms.remove(key, {"shared": 1.0})
    found = terms.candidates(-1, Vector.of({"shared": 1.0}, 1.0), 25)
    assert len(found) == 25
    assert not set(found) & set(range(10))


def test_posting_lists_drop_evicted_keys_and_empty_lists() -> None:
    terms = TermIndex()
    terms.add(1, {"a": 1.0, "b": 1.0})
    terms.add(2, {"a": 1.0})
    terms.remove(2, {"a": 1.0})  # not at the front: skipped lazily, not scanned for
    assert list(terms.postings["a"]) == [1, 2]
    terms.remove(1, {"a": 1.0, "b": 1.0})
    assert terms.postings == {}


def test_decayed_document_frequency_survives_sweeps() -> None:
    terms = TermIndex(half_life_docs=4)
    terms.add(0, {"x": 1.0})
    for key in range(1, 10):
        terms.add(key, {f"y{key}": 1.0})
    assert terms.df("x") == pytest.approx(0.5 ** (9 / 4))
    assert terms.df("y9") == pytest.approx(1.0)
    assert terms.df("unseen") == 0.0


def test_pair_cache_is_symmetric_bounded_and_ages_out() -> None:
    cache = PairCache(per_entry=4, max_age=10)
    for other in range(1, 6):
        cache.put(0, other, other / 10, now=0)
    assert cache.size(0) <= 4
    assert cache.nearest(0, 2) == [5, 4]
    assert cache.get(5, 0, now=10) == pytest.approx(0.5)
    assert cache.get(5, 0, now=11) is None
    cache.forget(5)
    assert cache.get(0, 5, now=0) is None and 5 not in cache.nearest(0, 10)


def test_pairs_under_the_floor_are_not_kept() -> None:
    cache = PairCache(per_entry=4, max_age=10, floor=0.15)
    cache.put(0, 1, 0.149, now=0)
    cache.put(0, 2, 0.15, now=0)
    assert cache.get(0, 1, now=0) is None and cache.get(1, 0, now=0) is None
    assert cache.get(2, 0, now=0) == pytest.approx(0.15)
    assert cache.nearest(0, 10) == [2] and cache.size(1) == 0


def test_the_index_keeps_no_pair_under_the_related_threshold() -> None:
    index = StoryIndex()
    for n, content in enumerate(FILLERS):
        index.add(item(900 + n, content, hours=-1), now=T0)
    for key in (1, 2, 3):
        index.add(item(key, QUAKE[key - 1], hours=key / 10), now=T0)
    kept = [(a, b) for a in index._entries for b in index.neighbours(a, 1000)]
    assert kept and all(index.similarity(a, b) >= index.related_threshold for a, b in kept)


def test_related_lists_come_from_compared_pairs_without_a_new_search() -> None:
    index = StoryIndex()
    for n, content in enumerate(FILLERS):
        index.add(item(900 + n, content, hours=-1), now=T0)
    for key in (1, 2, 3):
        index.add(item(key, QUAKE[key - 1], hours=key / 10), now=T0)
    before = index.terms.added
    related = index.related(1)
    assert set(related) == {2, 3}
    assert index.neighbours(1, 2) == sorted((2, 3), key=lambda other: -index.similarity(1, other))
    assert index.terms.added == before


def test_term_counts_are_kept_in_single_precision_only_when_exact() -> None:
    from aggregator.stories import _compact

    exact = [1.0, 1.5, 4.5, 13.0, 2.25]
    assert _compact(exact).typecode == "f" and _compact(exact).tolist() == exact
    inexact = [1.0, 0.1]
    assert _compact(inexact).typecode == "d" and _compact(inexact).tolist() == inexact


def _centroid_invariant_holds(index: StoryIndex) -> None:
    """Every story's centroid is the sum of its members' unit weights; one-member stories
    keep none of their own (the centroid linkages build those they score)."""
    for story_id in index.story_ids():
        story = index._stories[story_id]
        expected: dict[str, float] = {}
        for key in story.members:
            entry = index._entries[key]
            for term, unit in zip(entry.terms(), entry.centroid_share() or (), strict=False):
                expected[term] = expected.get(term, 0.0) + unit
        expected = {t: v for t, v in expected.items() if abs(v) > 1e-9}
        centroid = index._centroid(story)
        assert centroid.keys() == expected.keys()
        assert all(centroid[t] == pytest.approx(v) for t, v in expected.items())
        if len(story.members) == 1 and index.linkage == "average":
            assert story.centroid == {} and story.solo == story.members[0]
        assert story.solo is None or story.centroid == {}


@pytest.mark.parametrize("linkage", ["average", "centroid", "mixed"])
def test_one_member_stories_build_their_centroid_only_when_a_second_joins(linkage: str) -> None:
    index = StoryIndex(linkage=linkage, window=timedelta(hours=10))  # type: ignore[arg-type]
    for n, content in enumerate(FILLERS):
        index.add(item(900 + n, content, hours=n / 10), now=T0 + timedelta(hours=n / 10))
    _centroid_invariant_holds(index)
    for key in (1, 2, 3):
        index.add(item(key, QUAKE[key - 1], hours=1 + key), now=T0 + timedelta(hours=1 + key))
    _centroid_invariant_holds(index)
    quake = index.story_of(1)
    assert len(index.member_keys(quake)) == 3 and index._stories[quake].solo is None
    index.evict_older_than(T0 + timedelta(hours=2.5))  # the fillers and the first quake item
    _centroid_invariant_holds(index)
    index.split(quake, [3])
    _centroid_invariant_holds(index)
    if linkage == "average":
        assert index._stories[index.story_of(2)].solo == 2


def _reference_candidates(terms: TermIndex, key: int, vector: Vector, limit: int) -> list[int]:
    """`candidates` as specified: live keys only, rough score, ties in the order first read."""
    ceiling = max(terms.MIN_DF_CEILING, terms.max_df_ratio * terms.n_docs)
    usable = sorted(
        ((w, t) for t, w in vector.items() if terms.df(t) <= ceiling),
        key=lambda wt: (-wt[0], wt[1]),
    )
    lists = sorted(
        ((w, terms.postings.get(t, [])) for w, t in usable[: terms.query_terms]),
        key=lambda wp: len(wp[1]),
    )
    scores: dict[int, float] = {}
    budget = terms.scan_budget
    for weight, posting in lists:
        budget -= len(posting)
        if budget < 0:
            break
        for other in posting:
            scores[other] = scores.get(other, 0.0) + weight
    ranked = sorted(
        (
            (other, score)
            for other, score in scores.items()
            if other != key and other in terms._live
        ),
        key=lambda kv: -kv[1],
    )
    return [other for other, _ in ranked[:limit]]


def test_candidates_match_the_reference_with_keys_evicted_mid_list() -> None:
    rng = random.Random(11)
    vocabulary = [f"t{i}" for i in range(25)]
    terms = TermIndex(scan_budget=150)
    live: dict[int, list[str]] = {}
    for key in range(600):
        words = rng.sample(vocabulary, rng.randint(1, 6))
        terms.add(key, words)
        live[key] = words
        if key % 3 == 0 and len(live) > 5:  # evict from anywhere, not only the front
            gone = rng.choice(sorted(live))
            terms.remove(gone, live.pop(gone))
        query = Vector.of({w: float(rng.randint(1, 4)) for w in rng.sample(vocabulary, 4)}, 1.0)
        probe = rng.choice([*live, -1])
        limit = rng.choice([1, 3, 10, 40])
        assert terms.candidates(probe, query, limit) == _reference_candidates(
            terms, probe, query, limit
        )
