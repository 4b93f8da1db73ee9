"""Tests for aggregator.titles: site-name removal and reference trimming."""

from __future__ import annotations

import pytest

from aggregator.titles import prefer_reference, strip_short_suffix, strip_site_name


@pytest.mark.parametrize(
    ("title", "site", "domain", "expected"),
    [
        ("Storm hits coast - The Guardian", "The Guardian", None, "Storm hits coast"),
        ("Storm hits coast | Guardian", "The Guardian", None, "Storm hits coast"),
        ("Storm hits coast — Example News", "Example News", None, "Storm hits coast"),
        ("Storm hits coast – Example News", "Example News", None, "Storm hits coast"),
        ("Example News: Storm hits coast", "Example News", None, "Storm hits coast"),
        ("Example News | Storm hits coast", "Example News", None, "Storm hits coast"),
        ("Storm hits coast | CNN Politics", "CNN", None, "Storm hits coast"),
        ("Storm hits coast - NYTimes.com", None, "nytimes.com", "Storm hits coast"),
        ("Storm hits coast | The Example", None, "theexample.co.uk", "Storm hits coast"),
        ("Storm hits coast -- Sott.net", "Sott.net", None, "Storm hits coast"),
        ("嵐が沿岸を直撃した：朝日新聞デジタル", "朝日新聞デジタル", None, "嵐が沿岸を直撃した"),
        ("嵐が沿岸を直撃した | RBB TODAY", "RBB TODAY", None, "嵐が沿岸を直撃した"),
        ("Storm &amp; rain  hit\n coast - Example", "Example", None, "Storm & rain hit coast"),
    ],
)
def test_strip_site_name_removes_the_outlet(
    title: str, site: str | None, domain: str | None, expected: str
) -> None:
    assert strip_site_name(title, site, domain) == expected


@pytest.mark.parametrize(
    ("title", "site", "domain"),
    [
        ("Storm hits coast - residents evacuate", "Example News", "example.com"),
        ("Self-Driving cars arrive", "Driving", None),
        ("Example - News", "Example", None),  # nothing meaningful would remain
        ("Timely advice for the Sometime traveller", "Time", None),
        ("Storm hits coast", None, None),
    ],
)
def test_strip_site_name_keeps_titles_that_do_not_end_in_the_site(
    title: str, site: str | None, domain: str | None
) -> None:
    assert strip_site_name(title, site, domain) == title


def test_strip_site_name_removes_stacked_site_segments() -> None:
    assert strip_site_name("Storm hits - Example - Example.com", "Example", None) == "Storm hits"


@pytest.mark.parametrize(
    ("title", "references", "expected"),
    [
        ("Opinion | Enough platitudes: name names", ["Enough platitudes: name names"], None),
        ("New Zealand - Wikipedia", ["New Zealand"], None),
        ("Genetik: Das Geheimnis der Blumen", ["Das Geheimnis der Blumen"], None),
        ("Opinion | Enough platitudes", ["Opinion"], "Opinion | Enough platitudes"),
        ("A plain headline", ["A plain"], "A plain headline"),
        ("One | Two", [None, ""], "One | Two"),
    ],
)
def test_prefer_reference_trims_only_confirmed_decoration(
    title: str, references: list[str | None], expected: str | None
) -> None:
    assert prefer_reference(title, references) == (expected or references[0])


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Lorem ipsum dolor sit amet – My website", "Lorem ipsum dolor sit amet"),
        ("Big story here | Four word site name", "Big story here | Four word site name"),
        ("Two words - Site", "Two words - Site"),
        ("No separator at all", "No separator at all"),
    ],
)
def test_strip_short_suffix(title: str, expected: str) -> None:
    assert strip_short_suffix(title) == expected
