"""Plain-text helpers shared by the feed, page and normalisation steps.

Everything that turns markup into text goes through `html_to_text`, so that excerpts,
titles and linking text are cleaned the same way whatever their origin.
"""

from __future__ import annotations

import html
import re
import unicodedata

from lxml import etree

_TAG_HINT = re.compile(r"<[A-Za-z!/?]")
_WHOLE_DOCUMENT = re.compile(r"^\s*<(?:html|!doctype)", re.IGNORECASE)  # as lxml.html tells
_FRAGMENT_PARSER = etree.HTMLParser()
# C0/C1 controls (but tab/newline/CR), bidi overrides and isolates, non-characters, and lone
# surrogates (a JSON string may escape one, "\ud800"; no UTF-8 output can hold it).
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff"
    "\ud800-\udfff]"
)
_SKIP_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "head")
_BLOCK_TAGS = frozenset(
    "p div br li ul ol h1 h2 h3 h4 h5 h6 blockquote tr td th table section article "
    "header footer figure figcaption pre hr dd dt".split()
)


def strip_unsafe_chars(text: str) -> str:
    """Remove control, bidi-override and non-characters that break or spoof outputs.

    Each of them is a control, format, surrogate or unassigned code point, which
    `str.isprintable` refuses, so a printable text (most titles, names and links) is
    returned without running the pattern: 0.2 against 0.6 us a call, some fifty calls a
    record."""
    return text if text.isprintable() else _UNSAFE_CHARS.sub("", text)


def collapse_whitespace(text: str) -> str:
    r"""Collapse runs of whitespace into single spaces and trim the ends.

    `str.split` and the regex ``\s`` agree on what whitespace is (every code point was
    checked); splitting and joining is four times as fast as ``re.sub(r"\s+", " ", …)``."""
    return " ".join(text.split())


def cut_at_word(text: str, limit: int) -> str:
    """`text` up to `limit` characters, ending at its last space when that keeps over half."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def clean_inline(text: str) -> str:
    """Decode entities, drop unsafe characters, normalise to NFC and collapse whitespace."""
    decoded = html.unescape(text)
    return collapse_whitespace(unicodedata.normalize("NFC", strip_unsafe_chars(decoded)))


def html_to_text(markup: str) -> str:
    """Turn an HTML fragment (or plain text) into one line of clean plain text.

    Scripts, styles and similar elements are dropped with their content; block elements
    become spaces; entities are decoded. Plain text without tags is only cleaned.
    """
    if not markup:
        return ""
    if not _TAG_HINT.search(markup):
        return clean_inline(cut_at_word(markup, MAX_MARKUP_LENGTH))
    try:
        body = _fragment_body(strip_unsafe_chars(_cut_markup(markup)))
    except (etree.LxmlError, ValueError):
        return clean_inline(re.sub(r"<[^>]*>", " ", markup))
    if body is None:
        return ""  # a whole document with no body shows no text
    parts: list[str] = []
    _collect_text(body, parts)
    return clean_inline(" ".join(parts).replace("\u00a0", " "))


MAX_MARKUP_LENGTH = 1_000_000
"""Markup (or plain text) past this many characters is not read: libxml2 drops a text node
over 10 MB (without `huge_tree`), which made a 12 MB summary give no text at all; cleaning
a 12 MB plain-text summary whole split it into 2.4 million words at once; and no record
keeps more than `records.MAX_TEXT_LENGTH` characters of text anyway."""


def _cut_markup(markup: str) -> str:
    """`markup` up to `MAX_MARKUP_LENGTH` characters, ending before the tag or word that
    the limit cuts in half."""
    if len(markup) <= MAX_MARKUP_LENGTH:
        return markup
    cut = markup[:MAX_MARKUP_LENGTH]
    open_tag = cut.rfind("<")
    if open_tag > cut.rfind(">"):
        return cut[:open_tag]
    space = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind(">") + 1)
    return cut[:space] if space > MAX_MARKUP_LENGTH // 2 else cut


def _fragment_body(markup: str) -> etree._Element | None:
    """The `<body>` holding `markup` parsed as an HTML fragment (None: a whole document
    without one).

    As `lxml.html.fragment_fromstring` parses it: wrapped in ``<html><body>`` unless it
    starts as a whole document. Its parse asserts that a body exists, so a summary of
    ``<html></html>`` failed the whole feed; and its parser looks up a Python class for
    every element, which etree's does not.
    """
    document = markup if _WHOLE_DOCUMENT.match(markup) else f"<html><body>{markup}</body></html>"
    root = etree.fromstring(document, _FRAGMENT_PARSER)
    if root is None:
        raise etree.ParserError("the document is empty")
    return next((child for child in root if child.tag == "body"), None)


def _collect_text(element: etree._Element, parts: list[str]) -> None:
    """Append the visible text of `element` in document order (iterative: no recursion limit)."""
    stack: list[etree._Element | str] = [element]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        tag = item.tag.lower() if isinstance(item.tag, str) else ""
        if tag and tag not in _SKIP_TAGS:
            if item.text:
                parts.append(item.text)
            pending: list[etree._Element | str] = []
            for child in item:
                pending.append(child)
                if child.tail:
                    pending.append(child.tail)
            if tag in _BLOCK_TAGS:
                pending.append(" ")
            stack.extend(reversed(pending))
        elif not tag:
            continue
