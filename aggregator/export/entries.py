"""Related entries rendered once for every export format and reused by the records listing them.

Related entries are most of every exported record: on the bench corpus a record lists six
on average, and its 35,894 entries are 5,909 distinct ones. `EntryMemo` renders an entry
once into each form the export needs (its public dict, its canonical JSON for the seal, its
JSON text, its Markdown lines), keeps the last `size` entries it rendered, and builds each
record's `PublicForm` from them. The renderers splice those pieces in where their encoders
would have put the same bytes (`render_public_markdown`, `public_to_json_line`,
`Sealer.renewed`); tests/test_export_identical.py checks the files against the plain path.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aggregator.export.fields import record_to_public, related_to_public
from aggregator.export.jsonl import json_text, public_to_json_line
from aggregator.export.markdown import render_public_markdown, render_related_item
from aggregator.export.seal import canonical_json
from aggregator.models import Record, RelatedRecord

MEMO_SIZE = 2048  # rendered entries kept (about 3 KB each)


@dataclass(frozen=True, slots=True)
class RenderedEntry:
    """One related entry in every exported form."""

    public: dict[str, Any]
    canonical: str
    json: str
    markdown: str


@dataclass(frozen=True, slots=True)
class PublicForm:
    """A record's public dict, with its related entries already rendered (None: not)."""

    fields: dict[str, Any]
    related: tuple[RenderedEntry, ...] | None = None

    def canonical(self) -> dict[str, str]:
        """The fields whose canonical JSON is at hand (for `Sealer.renewed`)."""
        if self.related is None:
            return {}
        return {"related": "[" + ",".join(entry.canonical for entry in self.related) + "]"}

    def markdown(self) -> str:
        """The record's Markdown file."""
        if self.related is None:
            return render_public_markdown(self.fields)
        return render_public_markdown(self.fields, "\n".join(e.markdown for e in self.related))

    def json_line(self) -> str:
        """The record's JSON line (no newline)."""
        if self.related is None:
            return public_to_json_line(self.fields)
        return public_to_json_line(self.fields, [entry.json for entry in self.related])


class EntryMemo:
    """Renders related entries, remembering the last `size` (equal entries render alike)."""

    def __init__(self, size: int | None = None) -> None:
        self._size = MEMO_SIZE if size is None else size
        self._rendered: OrderedDict[str, tuple[RelatedRecord, RenderedEntry]] = OrderedDict()

    def public_form(self, record: Record) -> PublicForm:
        """`record`'s public dict and rendered related entries."""
        related = tuple(self.rendered(entry) for entry in record.related)
        fields = record_to_public(record, related=[entry.public for entry in related])
        return PublicForm(fields, related)

    def rendered(self, entry: RelatedRecord) -> RenderedEntry:
        """`entry` in every exported form."""
        key = entry.web_url
        kept = self._rendered.get(key)
        if kept is not None and (kept[0] is entry or kept[0] == entry):
            self._rendered.move_to_end(key)
            return kept[1]
        public = related_to_public(entry)
        rendered = RenderedEntry(
            public=public,
            canonical=canonical_json(public).decode("ascii"),
            json=json_text(public),
            markdown=render_related_item(public),
        )
        self._rendered[key] = (entry, rendered)
        self._rendered.move_to_end(key)
        if len(self._rendered) > self._size:
            self._rendered.popitem(last=False)
        return rendered
