"""Tests for aggregator.titles: site-name removal and reference trimming."""

from __future__ import annotations

import pytest

from aggregator.titles import (
    confirmed_h1,
    prefer_reference,
    prefer_visible_headline,
    strip_short_suffix,
    strip_site_name,
)


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
        ("Rocket lands on the Moon (Published 2016)", ["Rocket lands on the Moon"], None),
        ("Weekly Edition for March 26 [LWN.net]", ["Weekly Edition for March 26", None], None),
        ("Rocket lands (again)", ["Rocket lands on the Moon"], "Rocket lands (again)"),
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


SOCIAL = "Lady Gaga Shares Pic of Ex Taylor Kinney With Her Mom"
SEEN = "Lady Gaga Shares Photo of Ex Taylor Kinney Hanging With Her Mom and Now We Are Confused"


@pytest.mark.parametrize(
    ("h1", "metadata", "expected"),
    [
        # The visible headline tells the story of the metadata titles in other words.
        (SEEN, [SOCIAL, None], SEEN),
        # Part of the title: a shortening, not a different headline.
        ("Lady Gaga Shares Pic of Ex Taylor Kinney", [SOCIAL], SOCIAL),
        # Too few words once the site's name is left out.
        ("Example News Daily Briefing Room", [SOCIAL], SOCIAL),
        ("Broken Pledge", [SOCIAL], SOCIAL),
        # A teaser or a section heading sharing little with the page's titles.
        ("Five things to watch in the markets this week", [SOCIAL], SOCIAL),
        (None, [SOCIAL], SOCIAL),
    ],
)
def test_prefer_visible_headline(h1: str | None, metadata: list[str | None], expected: str) -> None:
    assert prefer_visible_headline(SOCIAL, h1, metadata, ["Example News", "example.com"]) == (
        expected
    )


@pytest.mark.parametrize(
    ("h1s", "preferred", "expected"),
    [
        # The logo's and a section's <h1> come first; the metadata confirm the third.
        (["Example News", "Business Monday", SOCIAL], "Example News", SOCIAL),
        # Part of a metadata title beats a partial overlap of words.
        (["Lady Gaga news", "Lady Gaga Shares Pic"], "Lady Gaga news", "Lady Gaga Shares Pic"),
        # Nothing better confirmed: the caller's pick stays.
        (["Weather", "Sports"], "Weather", "Weather"),
        ([SEEN], SEEN, SEEN),
        ([], None, None),
    ],
)
def test_confirmed_h1(h1s: list[str], preferred: str | None, expected: str | None) -> None:
    assert confirmed_h1(h1s, preferred, [SOCIAL, None], "Example News", "example.com") == expected


def test_the_decoration_searches_leave_a_title_past_their_bounds_alone() -> None:
    # Both searches are quadratic or worse: a 64 kB og:title of "a - a - … |" took 20 s
    # in strip_site_name, and 2,500 segments would take prefer_reference minutes.
    long_title = "word " * 300 + "| Example"
    assert strip_site_name(long_title, "Example", None) == long_title.strip()
    assert strip_site_name("Storm hits | Example", "Example", None) == "Storm hits"
    many = " | ".join(f"part {index}" for index in range(20))
    assert prefer_reference(many, ["part 3 | part 4"]) == many
    assert prefer_reference("part 1 | part 2 | part 3", ["part 2 | part 3"]) == "part 2 | part 3"


HEADLINE = "短缺药品保供稳价 全力保障临床用药需求"


LONG_TAIL = "Storm closes the coast-A very long and winding site name"


@pytest.mark.parametrize(
    ("title", "reference", "expected"),
    [
        (f"{HEADLINE}-新华网", HEADLINE, HEADLINE),
        (f"新华网｜{HEADLINE}", HEADLINE, HEADLINE),
        (
            "Storm closes the coast road-Daily Post",
            "Storm closes the coast road",
            "Storm closes the coast road",
        ),
        # the reference must be at least 8 characters and twice as long as what it drops
        ("COVID-19", "COVID", "COVID-19"),
        (LONG_TAIL, "Storm closes the coast", LONG_TAIL),
    ],
)
def test_a_tight_separator_is_cut_where_a_reference_ends(
    title: str, reference: str, expected: str
) -> None:
    assert prefer_reference(title, [reference, None]) == expected
