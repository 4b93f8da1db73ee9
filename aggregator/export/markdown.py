"""Markdown with YAML front matter, byte for byte in the style of the seed record.

The front matter is written by hand, not by a YAML emitter, because the seed's layout
(blank lines between blocks, which strings are quoted) is part of the format:

    ---
    category: news                  bare when it reads back as the same string
    title: "…"                      always double-quoted
    publishedDateTime: 2020-02-02T11:06:00Z
    quality: 59
    published: false
    <blank>
    provider:
      name: Edmonton Journal
    …
    secured: "…"
    ---
    <empty body: one blank line>

Nothing is stripped. Every string is escaped instead, so any text (newlines, ``---``,
``: ``, ``&a``, ``!!python/object``, NUL, bidi controls, U+2028) comes back exactly and
cannot end the front matter or inject YAML. Reading uses safe constructors only
(`aggregator.yaml_input`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import yaml

from aggregator.errors import ExportError
from aggregator.export.fields import public_to_record, record_to_public
from aggregator.models import Record
from aggregator.yaml_input import YamlInputError, load_yaml

_FENCE = "---"
_QUOTED_KEYS = frozenset(
    {"title", "excerpt", "webUrl", "ampWebUrl", "cdnAmpWebUrl", "url", "secured"}
)
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"}
# Unicode categories written as escapes: controls, format (bidi, zero-width), surrogates,
# private use, unassigned, line/paragraph separators. Spaces other than U+0020 too.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
_BARE_CHARS = re.compile(r"[\w ./'&()+,-]*")  # \w is exactly str.isalnum() plus "_"
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"
_BLOCKS = ("provider", "topics", "images", "related", "secured")


def render_markdown(record: Record) -> str:
    """Render a record as a Markdown file whose front matter holds every public field."""
    return render_public_markdown(record_to_public(record))


def render_public_markdown(public: Mapping[str, Any], related: str | None = None) -> str:
    """Render a record's public dict (`record_to_public`) as its Markdown file.

    `related`, when given, is the `render_related_item` of each related entry, joined by
    newlines: the lines below ``related:``, already rendered.
    """
    lines = [_FENCE]
    for key, value in public.items():
        if key in _BLOCKS:
            lines.append("")
        if key == "related" and related is not None and value:
            lines.extend(("related:", related))
        else:
            _render_entry(lines, key, value, "")
    lines.extend((_FENCE, "", ""))
    return "\n".join(lines)


def render_related_item(entry: Mapping[str, Any]) -> str:
    """The lines of one related entry (`related_to_public`) below ``related:``."""
    lines: list[str] = []
    _render_item(lines, entry, "  ")
    return "\n".join(lines)


def _render_entry(lines: list[str], key: str, value: Any, indent: str) -> None:
    """Append `key: value` at `indent`; mappings and lists become nested blocks."""
    if isinstance(value, dict):
        lines.append(f"{indent}{key}:")
        inner = indent + "  "
        for sub_key, sub_value in value.items():
            _render_entry(lines, sub_key, sub_value, inner)
    elif isinstance(value, list):
        if not value:
            lines.append(f"{indent}{key}: []")
            return
        lines.append(f"{indent}{key}:")
        inner = indent + "  "
        for item in value:
            _render_item(lines, item, inner)
    else:
        lines.append(f"{indent}{key}: {_scalar(key, value)}")


def _render_item(lines: list[str], item: Any, indent: str) -> None:
    """Append one list item: `- scalar`, or a mapping whose first key follows the dash."""
    if not isinstance(item, dict):
        lines.append(f"{indent}- {_scalar('', item)}")
        return
    first = len(lines)
    inner = indent + "  "
    for sub_key, sub_value in item.items():
        _render_entry(lines, sub_key, sub_value, inner)
    lines[first] = f"{indent}- {lines[first].lstrip(' ')}"


def _scalar(key: str, value: Any) -> str:
    if type(value) is str:
        return _string(key, value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{key}: cannot render {type(value).__name__}")
    return _string(key, value)


def _string(key: str, value: str) -> str:
    if key == "publishedDateTime" and _is_utc_stamp(value):
        return value
    if key in _QUOTED_KEYS or not is_bare_safe(value):
        return quote(value)
    return value


_UTC_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _is_utc_stamp(value: str) -> bool:
    return _UTC_STAMP.fullmatch(value) is not None


@functools.lru_cache(maxsize=4096)  # categories, providers, topics: the same few strings
def is_bare_safe(value: str) -> bool:
    """True when `value` may be written as a plain YAML scalar and read back unchanged.

    Deliberately narrow: starts with a letter or digit, holds only letters, digits and
    `` ._-/'&()+,``, no trailing space, and YAML's implicit resolver must see a string
    (so ``null``, ``yes``, ``1_000``, ``2020-01-01`` get quoted).
    """
    if not value or not value[0].isalnum() or value[-1] == " ":
        return False
    if _BARE_CHARS.fullmatch(value) is None:
        return False
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG


def quote(value: str) -> str:
    """Return `value` as a YAML double-quoted scalar on one line, escaping anything unsafe."""
    # str.isprintable is False exactly for _ESCAPED_CATEGORIES (U+0020 aside): fast path.
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return '"' + "".join(_escape_char(char) for char in value) + '"'


def _escape_char(char: str) -> str:
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    if char == " " or unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def split_front_matter(text: str, source: str = "<markdown>") -> tuple[str, str]:
    """Split a document into (front matter, body); the front matter sits between the first
    two ``---`` lines and the body is what follows the second one."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip("\r") != _FENCE:
        raise ExportError(source, "no front matter: the first line is not '---'")
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r") == _FENCE:
            return "\n".join(lines[1:index]) + "\n", "\n".join(lines[index + 1 :])
    raise ExportError(source, "front matter is not closed by a '---' line")


def parse_markdown(text: str, source: str = "<markdown>") -> Record:
    """Read a Markdown record back into a Record (safe YAML constructors only).

    Raises ExportError(source, …) naming the field when the front matter is invalid.
    """
    front, _body = split_front_matter(text.removeprefix("\ufeff"), source)
    try:
        data = load_yaml(front, exact=True)
    except YamlInputError as exc:
        raise ExportError(source, f"invalid YAML front matter: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(source, "front matter is not a mapping")
    try:
        return public_to_record(data)
    except ValueError as exc:
        raise ExportError(source, str(exc)) from exc
