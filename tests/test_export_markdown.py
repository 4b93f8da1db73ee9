"""Markdown export: the seed round trip, quoting rules, and hostile-string safety."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.errors import ExportError
from aggregator.export.fields import PUBLIC_KEYS, public_to_record, record_to_public
from aggregator.export.markdown import is_bare_safe, parse_markdown, quote, render_markdown
from aggregator.models import Image, Provenance, Provider, Record, RelatedRecord

HOSTILE = [
    "---",
    "\n---\n",
    "a: b",
    "x #comment",
    "!!python/object/apply:os.system ['echo hi']",
    "&a *a",
    "]]>",
    "\x00",
    "\u202etxt.exe",
    "\u2028\u2029\x85",
    '"\\',
    "'",
    "null",
    "true",
    "1e3",
    "0x1F",
    "2020-01-01",
    "",
    " lead",
    "trail ",
    "\t\r\n",
    "\ufeff\ufffe\uffff",
    "\ud800",
    "\U0001f600 \U000e0001",
    "x" * 5000 + "\n---\n",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(blacklist_categories=())),
    st.lists(st.sampled_from(HOSTILE), max_size=4).map("".join),
)
datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda value: value.replace(microsecond=0))
sizes = st.none() | st.integers(min_value=-(2**40), max_value=2**40)
storable = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # the store's integers
providers = st.builds(Provider, name=hostile_text, domain=hostile_text)


def images(with_title: bool) -> st.SearchStrategy[Image]:
    """Images whose title is generated only where the shape carries one."""
    titles = (st.none() | hostile_text) if with_title else st.none()
    return st.builds(Image, url=hostile_text, width=sizes, height=sizes, title=titles)


related_records = st.builds(
    RelatedRecord,
    title=hostile_text,
    excerpt=hostile_text,
    published=st.none() | datetimes,
    web_url=hostile_text,
    amp_web_url=hostile_text,
    cdn_amp_web_url=hostile_text,
    type=hostile_text,
    provider=providers,
    quality=storable,
    images=st.lists(images(False), max_size=2).map(tuple),
)
records = st.builds(
    Record,
    title=hostile_text,
    web_url=hostile_text,
    provider=providers,
    category=hostile_text,
    excerpt=hostile_text,
    published=st.none() | datetimes,
    amp_web_url=hostile_text,
    cdn_amp_web_url=hostile_text,
    type=hostile_text,
    quality=storable,
    heat=storable,
    is_published=st.booleans(),
    topics=st.lists(hostile_text, max_size=3).map(tuple),
    images=st.lists(images(True), max_size=2).map(tuple),
    related=st.lists(related_records, max_size=2).map(tuple),
    secured=hostile_text,
)


def test_seed_round_trip_is_byte_identical(seed_file: Path) -> None:
    seed = seed_file.read_text(encoding="utf-8")
    assert render_markdown(parse_markdown(seed)) == seed


def test_seed_yaml_equal_key_for_key_in_order(seed_file: Path) -> None:
    seed = seed_file.read_text(encoding="utf-8")
    rendered = render_markdown(parse_markdown(seed))
    original = yaml.safe_load(seed.split("---\n")[1])
    again = yaml.safe_load(rendered.split("---\n")[1])
    assert again == original
    assert list(again) == list(original) == list(PUBLIC_KEYS)
    assert list(again["related"][0]) == list(original["related"][0])
    assert list(again["images"][0]) == list(original["images"][0])


def test_seed_parses_into_the_model(seed_file: Path) -> None:
    record = parse_markdown(seed_file.read_text(encoding="utf-8"))
    assert record.published == datetime(2020, 2, 2, 11, 6, tzinfo=UTC)
    assert record.provider == Provider("Edmonton Journal", "edmontonjournal.com")
    assert record.topics == ("AI", "Computer Vision")
    assert record.images[0] == Image(
        "https://postmediaedmontonjournal2.files.wordpress.com/2020/01/tech-antitrust-hiring.jpg",
        1000,
        750,
        "City police eye use of facial recognition technology to fight crime",
    )
    assert len(record.related) == 6 and record.related[5].quality == 55
    assert record.secured.endswith(";UjsG2CGD750AsvSGQEh5Kw==")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_render_parse_round_trip_is_identity(record: Record) -> None:
    text = render_markdown(record)
    assert text.startswith("---\n") and text.endswith("\n---\n\n")
    assert text.count("\n---\n") == 1, "a value broke out of the front matter"
    text.encode("utf-8")
    assert parse_markdown(text) == record


@pytest.mark.parametrize(
    ("value", "bare"),
    [
        ("news", True),
        ("Computer Vision", True),
        ("Johnson & Johnson", True),
        ("Sheriff's Office", True),
        ("edmontonjournal.com", True),
        ("Zürich Zeitung", True),
        ("", False),
        ("null", False),
        ("Yes", False),
        ("off", False),
        ("123", False),
        ("1_000", False),
        ("1.5", False),
        ("2020-01-01", False),
        ("a: b", False),
        ("a #b", False),
        ("-x", False),
        ("&anchor", False),
        ("*alias", False),
        ("!tag", False),
        ("trailing ", False),
        ("line\nbreak", False),
        ("bidi\u202e", False),
    ],
)
def test_bare_only_when_it_reads_back_as_the_same_string(value: str, bare: bool) -> None:
    assert is_bare_safe(value) is bare
    rendered = render_markdown(
        Record(title="t", web_url="u", provider=Provider(value, "d"), category=value)
    )
    assert parse_markdown(rendered).category == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("a\nb\tc\x00", '"a\\nb\\tc\\0"'),
        ("\u2028\u202e\x85\x7f", '"\\u2028\\u202E\\u0085\\u007F"'),
        ("\U000e0001", '"\\U000E0001"'),
        ("— ’ é 😀", '"— ’ é 😀"'),
    ],
)
def test_quote_escapes_only_what_is_unsafe(value: str, expected: str) -> None:
    assert quote(value) == expected
    assert yaml.safe_load(f"k: {expected}") == {"k": value}


def test_private_fields_are_not_exported() -> None:
    record = Record(
        title="t",
        web_url="u",
        provider=Provider("p", "d"),
        provenance=Provenance(
            "src", "https://feed.example/rss", "guid-1", categories=("FeedTagXyzzy",)
        ),
        text="private linking text",
    )
    text = render_markdown(record)
    assert "feed.example" not in text and "private" not in text
    assert "FeedTagXyzzy" not in text
    assert list(record_to_public(record)) == list(PUBLIC_KEYS)


def test_unknown_date_and_empty_lists_render_and_read_back() -> None:
    record = Record(title="t", web_url="u", provider=Provider("p", "d"))
    text = render_markdown(record)
    assert "publishedDateTime: null\n" in text and "\ntopics: []\n" in text
    assert parse_markdown(text) == record


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: x\n", "no front matter"),
        ("---\ntitle: x\n", "not closed"),
        ("---\n- a\n---\n", "not a mapping"),
        ("---\ntitle: [\n---\n", "invalid YAML"),
        ("---\ntitle: !!python/object/apply:os.system [ls]\n---\n", "invalid YAML"),
        ("---\ntitle: x\nwebUrl: u\n---\n", "provider: required"),
        ("---\ntitle: x\nwebUrl: u\nprovider: {name: p}\nquality: high\n---\n", "quality"),
        (
            "---\ntitle: x\nwebUrl: u\nprovider: {name: p}\nimages: [{url: u, width: true}]\n---\n",
            "images[0].width: expected int, got bool",
        ),
        (
            "---\ntitle: x\nwebUrl: u\nprovider: {name: p}\npublishedDateTime: soon\n---\n",
            "publishedDateTime: not a date",
        ),
        # YAML reads this as a date, which cannot exist: the field is named, no ValueError.
        (
            "---\ntitle: x\nwebUrl: u\nprovider: {name: p}\npublishedDateTime: 2024-13-45\n---\n",
            "publishedDateTime: not a date: '2024-13-45'",
        ),
        ("---\ntitle: " + "[" * 5000 + "]" * 5000 + "\n---\n", "nest 5001 levels deep"),
        ("---\ntitle: !!float abc\n---\n", "invalid YAML front matter: a value cannot be read"),
    ],
    ids=lambda value: value[:40],
)
def test_bad_front_matter_raises_export_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ExportError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_markdown(text, source="x.md")


def test_public_to_record_tolerates_missing_optional_fields() -> None:
    record = public_to_record({"title": "t", "webUrl": "u", "provider": {"name": "p"}})
    assert record == Record(title="t", web_url="u", provider=Provider("p", ""))


def test_related_image_titles_are_not_exported() -> None:
    image = Image("https://img.example/a.jpg", 10, None, "caption")
    related = RelatedRecord(
        "r", "", None, "https://r.example", "", "", "article", Provider("P", "d"), 1, (image,)
    )
    public = record_to_public(
        Record(title="t", web_url="u", provider=Provider("p", "d"), related=(related,))
    )
    assert public["related"][0]["images"] == [{"url": "https://img.example/a.jpg", "width": 10}]
