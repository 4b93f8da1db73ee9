"""The sparse products of story-index vectors: every route gives the plain sum."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from aggregator.stories_index import Vector

TERMS = st.sampled_from([f"t{i}" for i in range(40)])
WEIGHTS = st.dictionaries(TERMS, st.floats(0.01, 50.0), max_size=30)


def plain_dot(a: dict[str, float], b: dict[str, float]) -> float:
    """The reference: the sum over common terms, exactly summed."""
    return math.fsum(a[t] * b[t] for t in a.keys() & b.keys())


def vector(weights: dict[str, float]) -> Vector:
    return Vector.of(weights, math.sqrt(sum(w * w for w in weights.values())))


@given(WEIGHTS, WEIGHTS)
def test_every_product_is_the_plain_sum_whichever_side_is_shorter(
    a: dict[str, float], b: dict[str, float]
) -> None:
    expected = plain_dot(a, b)
    va, vb = vector(a), vector(b)
    for got in (va.dot(vb), vb.dot(va), va.dot_mapping(b), vb.dot_mapping(a)):
        assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12)


@given(WEIGHTS, WEIGHTS)
def test_cosine_from_is_the_dot_over_the_norms(a: dict[str, float], b: dict[str, float]) -> None:
    va, vb = vector(a), vector(b)
    got = vb.cosine_from(a, va.norm)
    if not (va.norm and vb.norm):
        assert got == 0.0
        return
    expected = plain_dot(a, b) / (va.norm * vb.norm)
    assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12)
    assert -1e-12 <= got <= 1.0 + 1e-12


def test_products_ignore_terms_on_one_side_only() -> None:
    short = vector({"quake": 2.0, "chile": 1.0})
    long = vector({"quake": 3.0, "valparaiso": 5.0, "power": 1.0, "homes": 4.0})
    assert short.dot(long) == long.dot(short) == 6.0
    assert short.dot_mapping(long.as_dict()) == long.dot_mapping(short.as_dict()) == 6.0
    assert vector({"a": 1.0}).dot(vector({"b": 1.0})) == 0.0
