"""JSON Lines: one record per line, same keys and order as the Markdown front matter.

Lines are UTF-8 (`ensure_ascii=False`) with NaN/Infinity refused. U+0085, U+2028 and
U+2029 are written as ``\\u`` escapes, so tools that split on every Unicode line break
(``str.splitlines``, JavaScript) still see one record per line; lone surrogates are
escaped too, so every line encodes as UTF-8 and reads back unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aggregator.errors import ExportError
from aggregator.export.fields import public_to_record, record_to_public
from aggregator.models import Record

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # json.dumps, built once
_MUST_ESCAPE = re.compile("[\x85\u2028\u2029\ud800-\udfff]")


def record_to_json_line(record: Record) -> str:
    """Serialise a record to one JSON line (no trailing newline)."""
    return public_to_json_line(record_to_public(record))


def public_to_json_line(public: Mapping[str, Any], related: Sequence[str] | None = None) -> str:
    """Serialise a record's public dict (`record_to_public`) to one JSON line.

    `related`, when given, is the `json_text` of each related entry, already encoded: it
    takes the place of the encoding of ``public["related"]``.
    """
    text = _ENCODER.encode(public) if related is None else _spliced(public, related)
    if not _needs_escapes(text):
        return text
    # Outside strings JSON never contains these characters, so escaping them is lossless.
    return _MUST_ESCAPE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _needs_escapes(text: str) -> bool:
    """Whether `text` holds a character of `_MUST_ESCAPE`, found without scanning it with
    the pattern (40 us a record line): none in ASCII text; else three substring searches,
    and a lone surrogate is what UTF-8 cannot encode."""
    if text.isascii():
        return False
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_text(value: Any) -> str:
    """`value` as the JSON text it has inside a line, before the line's escapes."""
    return _ENCODER.encode(value)


def _spliced(public: Mapping[str, Any], related: Sequence[str]) -> str:
    """What `_ENCODER.encode(public)` gives, with `related` as the encoded related list:
    the fields before and after it are encoded as two mappings, their braces dropped."""
    keys = list(public)
    if "related" not in keys:
        return _ENCODER.encode(public)
    at = keys.index("related")
    before = {key: public[key] for key in keys[:at]}
    after = {key: public[key] for key in keys[at + 1 :]}
    pieces = [_ENCODER.encode(before)[1:-1]] if before else []
    pieces.append(f'"related": [{", ".join(related)}]')
    if after:
        pieces.append(_ENCODER.encode(after)[1:-1])
    return "{" + ", ".join(pieces) + "}"


def records_to_jsonl(records: Iterable[Record]) -> str:
    """Serialise records to a JSON Lines document, each line ending in a newline."""
    return "".join(record_to_json_line(record) + "\n" for record in records)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_line(line: str) -> Record:
    """Parse one JSON line into a Record; ValueError names the problem or the field."""
    data = json.loads(line, parse_constant=_reject_constant)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return public_to_record(data)


def iter_jsonl(path: Path) -> Iterator[Record]:
    """Yield the records of a JSON Lines file; blank lines are skipped.

    Raises ExportError(path, "line N: …") on the first line that is not a valid record.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ExportError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = parse_json_line(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise ExportError(str(path), f"line {number}: {exc}") from exc
            yield record
