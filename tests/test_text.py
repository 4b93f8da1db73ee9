"""Text cleaning helpers: whitespace collapsing, inline cleaning, HTML to text."""

from __future__ import annotations

import re
import sys

import pytest

from aggregator.text import (
    _UNSAFE_CHARS,
    MAX_MARKUP_LENGTH,
    clean_inline,
    collapse_whitespace,
    html_to_text,
    strip_unsafe_chars,
)

EVERY_CHARACTER = "".join(
    chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF
)


def test_whitespace_is_what_the_regex_calls_whitespace_for_every_character() -> None:
    by_regex = set(re.findall(r"\s", EVERY_CHARACTER))
    assert by_regex == {char for char in EVERY_CHARACTER if char.isspace()}
    for space in sorted(by_regex):
        text = f"{space}one{space}{space}two\u00a0 three{space}"
        assert collapse_whitespace(text) == re.sub(r"\s+", " ", text).strip() == "one two three"


def test_every_unsafe_character_is_unprintable_so_printable_text_is_kept_whole() -> None:
    removed = _UNSAFE_CHARS.findall(EVERY_CHARACTER + "\ud800\udfff")
    # C0 but tab, LF and CR; DEL and C1; bidi marks; BOM; two non-characters; 2 surrogates
    assert len(removed) == 78
    assert not any(char.isprintable() for char in removed)
    for char in removed:
        assert strip_unsafe_chars(f"a{char}b") == "ab"
    assert strip_unsafe_chars("Café “quoted” 東京") == "Café “quoted” 東京"
    assert strip_unsafe_chars("line\nbreak\tand\u202egone") == "line\nbreak\tandgone"


def test_collapse_keeps_words_and_drops_runs_and_ends() -> None:
    assert collapse_whitespace("  a \t\n b\u2003\u3000c  ") == "a b c"
    assert collapse_whitespace("") == ""
    assert collapse_whitespace(" \n\t ") == ""
    assert collapse_whitespace("zero\u200bwidth") == "zero\u200bwidth"  # not whitespace


def test_clean_inline_decodes_strips_normalises_and_collapses() -> None:
    assert clean_inline("Caf&eacute;\u202e  &amp;\n\tbar\x00") == "Café & bar"
    assert clean_inline("e\u0301") == "\u00e9"  # NFC


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        # Whole documents without a body: lxml.html's fragment parse asserted a body.
        ("<html></html>", ""),
        ("<!DOCTYPE html><html><head><title>Only a head</title></head></html>", ""),
        ("<html><body><p>In the <b>body</b></p></body></html>", "In the body"),
        (" lead <b>bold</b> tail <script>no()</script>", "lead bold tail"),
        ("<p>One</p><p>Two</p>", "One Two"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


def test_clean_inline_drops_lone_surrogates() -> None:
    # json.loads turns "\\ud800" into one; no UTF-8 output (hash, store, export) holds it.
    assert clean_inline("a\ud800b\udfff") == "ab"
    assert html_to_text("<p>x\ud800</p>") == "x"


def test_a_huge_fragment_still_gives_its_text() -> None:
    # libxml2 drops a text node over 10 MB: this gave "" before, and lost the excerpt.
    text = html_to_text("<p>" + "word " * 2_400_000 + "</p>")
    assert 500_000 < len(text) <= MAX_MARKUP_LENGTH
    assert set(text.split(" ")) == {"word"}


def test_huge_plain_text_is_cut_at_a_word() -> None:
    # cleaned whole, a 12 MB plain-text summary was split into 2.4 million words at once;
    # a stray "<" is no tag to cut before (markup's rule kept only "x")
    text = html_to_text("x < y " + "word " * 400_000 + "end")
    assert 500_000 < len(text) <= MAX_MARKUP_LENGTH
    assert text.startswith("x < y word")
    assert set(text[6:].split(" ")) == {"word"}


def test_a_fragment_cut_inside_a_tag_leaves_no_piece_of_it() -> None:
    filler = "<p>" + "a" * (MAX_MARKUP_LENGTH - 10)
    text = html_to_text(filler + ' <a href="https://example.com/x">link</a> tail')
    assert text == "a" * (MAX_MARKUP_LENGTH - 10)
