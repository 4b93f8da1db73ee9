"""Which stored row an incoming record is: the upsert identity rules, batch-aware.

    1. same (source_name, provenance.guid)      when the guid is non-empty
    2. else same canonical web_url              any source
    3. else same amp_web_url, or the incoming webUrl is a stored AMP URL, or the incoming
       AMP URL is a stored webUrl (AMP ↔ canonical)
    4. else same text fingerprint               any source (`aggregator.dedupe`)
    5. else same provider and near-identical title published within DUPLICATE_WINDOW

`IdentityIndex.load` reads every row that any record of the batch could match, in a few
chunked queries; the upsert then keeps the index current as it inserts and updates, so
two records of one batch with the same identity collapse into one row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from aggregator.dedupe import DUPLICATE_WINDOW, text_fingerprint, title_key
from aggregator.models import Record
from aggregator.store.convert import utc
from aggregator.store.tables import RecordRow

CHUNK = 500
MIN_TITLE_WORDS = 4
_T = TypeVar("_T")


def chunked(items: Iterable[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    """Split `items` into lists of at most `size` (keeps IN lists under driver limits)."""
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class IdentityIndex:
    """Rows a batch may touch, keyed by the three identities."""

    def __init__(self) -> None:
        self.rows: dict[int, RecordRow] = {}
        self._by_guid: dict[tuple[str, str], int] = {}
        self._by_url: dict[str, int] = {}
        self._by_amp: dict[str, int] = {}
        self._by_text: dict[str, int] = {}
        self._by_title: dict[tuple[str, str], set[int]] = {}

    @classmethod
    def load(cls, session: Session, records: Sequence[Record]) -> IdentityIndex:
        """Read the stored rows that match any identity of `records`."""
        index = cls()
        guids: dict[str, set[str]] = {}
        for record in records:
            if record.provenance.guid:
                guids.setdefault(record.provenance.source_name, set()).add(record.provenance.guid)
        for source_name, source_guids in guids.items():
            for part in chunked(sorted(source_guids)):
                index._read(
                    session,
                    select(RecordRow).where(
                        col(RecordRow.source_name) == source_name, col(RecordRow.guid).in_(part)
                    ),
                )
        urls = {r.web_url for r in records} | {r.amp_web_url for r in records if r.amp_web_url}
        texts = {text_fingerprint(r.excerpt, r.text) for r in records} - {""}
        titles = {title_key(r.title) for r in records} - {""}
        for column, values in (
            (RecordRow.web_url, urls),
            (RecordRow.amp_web_url, urls),
            (RecordRow.text_hash, texts),
            (RecordRow.title_key, titles),
        ):
            for part in chunked(sorted(values)):
                index._read(session, select(RecordRow).where(col(column).in_(part)))
        return index

    def _read(self, session: Session, statement: SelectOfScalar[RecordRow]) -> None:
        for row in session.exec(statement):
            self.add(row)

    def add(self, row: RecordRow) -> None:
        """Index `row` under its current identities (lowest id wins a shared AMP URL)."""
        assert row.id is not None
        self.rows[row.id] = row
        if row.guid:
            self._by_guid[(row.source_name, row.guid)] = row.id
        self._by_url[row.web_url] = row.id
        if row.amp_web_url:
            current = self._by_amp.get(row.amp_web_url)
            if current is None or row.id < current:
                self._by_amp[row.amp_web_url] = row.id
        if row.text_hash:
            self._by_text.setdefault(row.text_hash, row.id)
        if row.title_key:
            self._by_title.setdefault((row.provider_domain, row.title_key), set()).add(row.id)

    def discard(self, row: RecordRow) -> None:
        """Forget `row`'s identities (before it changes them)."""
        if row.guid and self._by_guid.get((row.source_name, row.guid)) == row.id:
            del self._by_guid[(row.source_name, row.guid)]
        if self._by_url.get(row.web_url) == row.id:
            del self._by_url[row.web_url]
        if row.amp_web_url and self._by_amp.get(row.amp_web_url) == row.id:
            del self._by_amp[row.amp_web_url]
            for other in self.rows.values():
                if other is not row and other.amp_web_url == row.amp_web_url:
                    self.add(other)
        if row.text_hash and self._by_text.get(row.text_hash) == row.id:
            del self._by_text[row.text_hash]
        self._by_title.get((row.provider_domain, row.title_key), set()).discard(row.id)

    def match(self, record: Record) -> RecordRow | None:
        """The row `record` is, by the identity rules; None when it is new."""
        return self.match_rule(record)[0]

    def match_rule(self, record: Record) -> tuple[RecordRow | None, int]:
        """The matching row and the ladder step (1–5) that matched; (None, 0) when new."""
        guid = record.provenance.guid
        steps = (
            self._by_guid.get((record.provenance.source_name, guid)) if guid else None,
            self._by_url.get(record.web_url),
            self._match_amp(record),
            self._by_text.get(text_fingerprint(record.excerpt, record.text)),
            self._match_title(record),
        )
        for step, row_id in enumerate(steps, start=1):
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
            stored = utc(self.rows[row_id].published_at)
            if stored is not None and abs(published - stored) <= DUPLICATE_WINDOW:
                return row_id
        return None

    def url_owner(self, web_url: str) -> int | None:
        """The id of the row holding `web_url`, if any."""
        return self._by_url.get(web_url)

    def guid_owner(self, source_name: str, guid: str) -> int | None:
        """The id of the row holding (source_name, guid), if any."""
        return self._by_guid.get((source_name, guid)) if guid else None
