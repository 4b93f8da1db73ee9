"""Which stored row an incoming record is: the upsert identity rules, batch-aware.

    1. same (source_name, provenance.guid)      when the guid is non-empty
    2. else same canonical web_url              any source
    3. else same amp_web_url, or the incoming webUrl is a stored AMP URL, or the incoming
       AMP URL is a stored webUrl (AMP ↔ canonical)
    4. else same text fingerprint               any source (`aggregator.dedupe`)
    5. else same provider and near-identical title published within DUPLICATE_WINDOW

`IdentityIndex.load` reads the column values of every row that any record of the batch
could match, in one query per CHUNK records; the upsert then keeps the index current as it
plans inserts and updates (rows to insert carry placeholder ids, see `PENDING_ID_BASE`), so
two records of one batch with the same identity collapse into one row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, and_, bindparam, or_, select

from aggregator.dedupe import DUPLICATE_WINDOW, text_fingerprint, title_key
from aggregator.models import Record
from aggregator.store.bulk import in_param
from aggregator.store.chunks import chunked
from aggregator.store.convert import RowValues
from aggregator.store.source_rows import utc
from aggregator.store.tables import RecordRow

_RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]
MIN_TITLE_WORDS = 4
PENDING_ID_BASE = 1 << 62
"""Rows a batch is about to insert get ids from here on: after every stored id, like the
ids the database will give them, and never confused with one."""


def is_pending(row_id: int) -> bool:
    """Whether `row_id` is the placeholder id of a row not inserted yet."""
    return row_id >= PENDING_ID_BASE


class IdentityIndex:
    """Rows a batch may touch (column values by id), keyed by the three identities."""

    def __init__(self) -> None:
        self.rows: dict[int, RowValues] = {}
        self._by_guid: dict[tuple[str, str], int] = {}
        self._by_url: dict[str, int] = {}
        self._by_amp: dict[str, int] = {}
        self._by_text: dict[str, int] = {}
        self._by_title: dict[tuple[str, str], set[int]] = {}

    @classmethod
    def load(cls, connection: Connection, records: Sequence[Record]) -> IdentityIndex:
        """Read the stored rows that match any identity of `records` (one query per chunk)."""
        index = cls()
        for part in chunked(records):
            statement, params = _identity_query(part)
            for row in connection.execute(statement, params):
                index.add(dict(row._mapping))
        return index

    def add(self, row: RowValues) -> None:
        """Index `row` under its current identities (lowest id wins a shared AMP URL)."""
        row_id: int = row["id"]
        self.rows[row_id] = row
        if row["guid"]:
            self._by_guid[(row["source_name"], row["guid"])] = row_id
        self._by_url[row["web_url"]] = row_id
        amp = row["amp_web_url"]
        if amp:
            current = self._by_amp.get(amp)
            if current is None or row_id < current:
                self._by_amp[amp] = row_id
        if row["text_hash"]:
            self._by_text.setdefault(row["text_hash"], row_id)
        if row["title_key"]:
            self._by_title.setdefault((row["provider_domain"], row["title_key"]), set()).add(row_id)

    def discard(self, row: RowValues) -> None:
        """Forget `row`'s identities (before it changes them)."""
        row_id = row["id"]
        guid_key = (row["source_name"], row["guid"])
        if row["guid"] and self._by_guid.get(guid_key) == row_id:
            del self._by_guid[guid_key]
        if self._by_url.get(row["web_url"]) == row_id:
            del self._by_url[row["web_url"]]
        amp = row["amp_web_url"]
        if amp and self._by_amp.get(amp) == row_id:
            del self._by_amp[amp]
            for other in self.rows.values():
                if other is not row and other["amp_web_url"] == amp:
                    self.add(other)
        if row["text_hash"] and self._by_text.get(row["text_hash"]) == row_id:
            del self._by_text[row["text_hash"]]
        self._by_title.get((row["provider_domain"], row["title_key"]), set()).discard(row_id)

    def match(self, record: Record) -> RowValues | None:
        """The row `record` is, by the identity rules; None when it is new."""
        return self.match_rule(record)[0]

    def match_rule(self, record: Record) -> tuple[RowValues | None, int]:
        """The matching row and the ladder step (1–5) that matched; (None, 0) when new."""
        guid = record.provenance.guid
        steps: tuple[Callable[[], int | None], ...] = (
            lambda: self._by_guid.get((record.provenance.source_name, guid)) if guid else None,
            lambda: self._by_url.get(record.web_url),
            lambda: self._match_amp(record),
            lambda: self._by_text.get(text_fingerprint(record.title, record.excerpt, record.text)),
            lambda: self._match_title(record),
        )
        for step, lookup in enumerate(steps, start=1):
            row_id = lookup()
            if row_id is not None:
                return self.rows[row_id], step
        return None, 0

    def _match_amp(self, record: Record) -> int | None:
        found = self._by_amp.get(record.web_url)
        if found is None and record.amp_web_url:
            found = self._by_amp.get(record.amp_web_url) or self._by_url.get(record.amp_web_url)
        return found

    def _match_title(self, record: Record) -> int | None:
        key = (record.provider.domain, title_key(record.title))
        published = utc(record.published)
        if published is None or len(key[1].split()) < MIN_TITLE_WORDS:
            return None  # short or undated titles ("Morning briefing") are not evidence
        for row_id in sorted(self._by_title.get(key, ())):
            stored = utc(self.rows[row_id]["published_at"])
            if stored is not None and abs(published - stored) <= DUPLICATE_WINDOW:
                return row_id
        return None

    def url_owner(self, web_url: str) -> int | None:
        """The id of the row holding `web_url`, if any."""
        return self._by_url.get(web_url)

    def guid_owner(self, source_name: str, guid: str) -> int | None:
        """The id of the row holding (source_name, guid), if any."""
        return self._by_guid.get((source_name, guid)) if guid else None


def _identity_query(records: Sequence[Record]) -> tuple[Select[Any], dict[str, Any]]:
    """SELECT every stored row any of `records` could match, and its parameters.

    The values go in as expanding parameters of a statement built once per shape (the
    number of sources, whether there are text and title keys): SQLAlchemy then neither
    coerces each value into an expression nor builds and looks up a new statement for
    every batch (a third of a batch's upsert, in Python)."""
    guids: dict[str, set[str]] = {}
    for record in records:
        if record.provenance.guid:
            guids.setdefault(record.provenance.source_name, set()).add(record.provenance.guid)
    params: dict[str, Any] = {}
    for number, (source_name, source_guids) in enumerate(sorted(guids.items())):
        params[f"source_{number}"] = source_name
        params[f"guids_{number}"] = sorted(source_guids)
    urls = {r.web_url for r in records} | {r.amp_web_url for r in records if r.amp_web_url}
    texts = {text_fingerprint(r.title, r.excerpt, r.text) for r in records} - {""}
    titles = {title_key(r.title) for r in records} - {""}
    keyed = {"urls": urls, "amp_urls": urls, "texts": texts, "titles": titles}
    params.update((name, sorted(values)) for name, values in keyed.items() if values)
    return _identity_statement(len(guids), frozenset(params)), params


@functools.lru_cache(maxsize=64)
def _identity_statement(sources: int, given: frozenset[str]) -> Select[Any]:
    """The identity SELECT for `sources` (source, guids) pairs and the key lists among the
    `given` parameters, in the order of the plain OR of IN terms."""
    columns = _RECORDS.c
    terms: list[ColumnElement[bool]] = [
        and_(
            columns.source_name == bindparam(f"source_{number}"),
            in_param(columns.guid, f"guids_{number}"),
        )
        for number in range(sources)
    ]
    keyed_columns = {
        "urls": columns.web_url,
        "amp_urls": columns.amp_web_url,
        "texts": columns.text_hash,
        "titles": columns.title_key,
    }
    terms += [in_param(column, name) for name, column in keyed_columns.items() if name in given]
    return select(_RECORDS).where(or_(*terms))
