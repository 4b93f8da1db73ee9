"""JSON Lines export: same keys as the seed, one line per record, clear line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ExportError
from aggregator.export.fields import PUBLIC_KEYS
from aggregator.export.jsonl import (
    iter_jsonl,
    parse_json_line,
    record_to_json_line,
    records_to_jsonl,
)
from aggregator.export.markdown import parse_markdown
from aggregator.models import Image, Provenance, Provider, Record

HOSTILE_TITLE = 'Ünïcode "quoted" \\ \n\r\u2028\u2029\x85\x00\u202e ]]> ---\ud800'


def make_record(title: str = "Title", url: str = "https://news.example/a") -> Record:
    return Record(
        title=title,
        web_url=url,
        provider=Provider("News Example", "news.example"),
        published=datetime(2020, 2, 2, 11, 6, tzinfo=UTC),
        topics=("AI",),
        images=(Image("https://news.example/a.jpg", 640, None, None),),
        quality=59,
    )


def test_seed_round_trips_through_json(seed_file: Path) -> None:
    record = parse_markdown(seed_file.read_text(encoding="utf-8"))
    line = record_to_json_line(record)
    data = json.loads(line)
    assert list(data) == list(PUBLIC_KEYS)
    assert data["publishedDateTime"] == "2020-02-02T11:06:00Z"
    assert data["images"][0] == {
        "url": "https://postmediaedmontonjournal2.files.wordpress.com/2020/01/tech-antitrust-hiring.jpg",
        "width": 1000,
        "height": 750,
        "title": "City police eye use of facial recognition technology to fight crime",
    }
    assert "’" in line, "non-ASCII is written as UTF-8, not escaped"


def test_feed_categories_are_not_exported() -> None:
    provenance = Provenance("src", "https://feed.example/rss", "g", categories=("FeedTagXyzzy",))
    line = record_to_json_line(replace(make_record(), provenance=provenance))
    assert "FeedTagXyzzy" not in line
    assert list(json.loads(line)) == list(PUBLIC_KEYS)


def test_hostile_title_stays_on_one_line_and_round_trips(tmp_path: Path) -> None:
    record = make_record(HOSTILE_TITLE)
    line = record_to_json_line(record)
    assert len(line.splitlines()) == 1
    path = tmp_path / "r.jsonl"
    path.write_bytes(records_to_jsonl([record, make_record()]).encode("utf-8"))
    assert list(iter_jsonl(path)) == [record, make_record()]


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(blacklist_categories=())), st.lists(st.text(), max_size=3))
def test_any_strings_round_trip(title: str, topics: list[str]) -> None:
    record = Record(title=title, web_url=title, provider=Provider(title, ""), topics=tuple(topics))
    line = record_to_json_line(record)
    assert "\n" not in line and len(line.splitlines()) == 1
    line.encode("utf-8")
    assert parse_json_line(line) == record


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "line 3: Expecting property name"),
        ("[1, 2]", "line 3: expected a JSON object"),
        ('{"title": "t", "webUrl": "u", "provider": {"name": "p"}, "heat": NaN}', "NaN"),
        ('{"title": 5, "webUrl": "u", "provider": {"name": "p"}}', "line 3: title: expected str"),
        ('{"title": "t", "webUrl": "u", "provider": {"name": "p"}, "topics": "AI"}', "topics"),
        ("[" * 100_000, "line 3"),
        (
            '{"title": "t", "webUrl": "u", "provider": {"name": "p"}, "quality": 1'
            + "0" * 25
            + "}",
            "line 3: quality: 1" + "0" * 25 + " is out of range",
        ),
        (
            '{"title": "t", "webUrl": "u", "provider": {"name": "p"}, '
            '"images": [{"url": "u", "width": -1' + "0" * 20 + "}]}",
            r"line 3: images\[0\].width: .* is out of range",
        ),
    ],
)
def test_bad_line_names_its_number(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(record_to_json_line(make_record()) + "\n\n" + bad + "\n", encoding="utf-8")
    records = iter_jsonl(path)
    assert next(records) == make_record()
    with pytest.raises(ExportError, match=message):
        next(records)


def test_invalid_utf8_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"title": "\xff"}\n')
    with pytest.raises(ExportError, match="line 1"):
        list(iter_jsonl(path))


def test_missing_file_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot read"):
        list(iter_jsonl(tmp_path / "absent.jsonl"))


_LINE_PIECES = st.sampled_from(
    ["plain", "é", "“quoted”", "\x85", "\u2028", "\u2029", "\ud800", "\udfff", "\\", '"', " "]
)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(_LINE_PIECES, st.text(max_size=6)), max_size=8).map("".join))
def test_lines_escape_exactly_what_the_plain_substitution_escapes(value: str) -> None:
    from aggregator.export.jsonl import _ENCODER, _MUST_ESCAPE, public_to_json_line

    public = {"title": value, "excerpt": f"a {value} b"}
    plain = _MUST_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", _ENCODER.encode(public))
    line = public_to_json_line(public)
    assert line == plain
    if not any("\ud800" <= char <= "\udfff" for char in value):  # JSON pairs "\\ud800\\udfff"
        assert json.loads(line) == public
