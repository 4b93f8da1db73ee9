"""The operations behind the CLI commands, shared with the scheduled jobs.

extract one page · import files · export records · verify seals. Each takes settings and a
store explicitly and raises only `AggregatorError`s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TextIO

from aggregator.dates import parse_datetime, utc_now
from aggregator.errors import AggregatorError, ConfigError, ExportError, ExtractError
from aggregator.export.feeds import FeedCollector
from aggregator.export.fields import record_to_public
from aggregator.export.files import (
    AtomicStream,
    ExportStats,
    ExportWriter,
    json_line_bytes,
    write_store_mark,
)
from aggregator.export.jsonl import iter_jsonl, record_to_json_line
from aggregator.export.manifest import export_fingerprint
from aggregator.export.markdown import parse_markdown, render_markdown
from aggregator.export.seal import Sealer, instance_id, load_or_create_key, verify_record
from aggregator.export_pages import PageJob, RenderedPage, helper_count, render_pages
from aggregator.fetch import Fetcher
from aggregator.inspection import extended_lines
from aggregator.models import Record
from aggregator.normalize import amp_cache_url, canonical_url, provider_domain
from aggregator.records import build_record
from aggregator.settings import Settings, SourceSettings
from aggregator.store import Store, StoredRecord, export_read
from aggregator.tracking import Tracker
from aggregator.workpool import default_workers

_SEAL_BATCH = 500  # new seals written back per transaction
_FEED_WINDOW = 5000  # newest published records considered for the topic feeds


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did."""

    files: int
    records: int
    new: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export and where (`out` None means the configured directory, "-" stdout)."""

    format: str
    out: str | None = None
    topic: str | None = None
    since: datetime | None = None
    published_only: bool = False
    extended: bool = False


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """The verdict on one record read from a file."""

    where: str
    ok: bool
    message: str


def parse_since(value: str | None) -> datetime | None:
    """Parse the --since option; a ConfigError naming the option when it is not a date."""
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise ConfigError("--since", f"not an ISO date: {value!r}")
    return parsed


def extract_one(settings: Settings, url: str, html_file: Path | None) -> Record:
    """One page → one record: read `html_file`, or fetch `url` when no file is given."""
    if html_file is not None:
        try:
            content = html_file.read_bytes()
        except OSError as exc:
            raise ExtractError(str(html_file), f"cannot read: {exc.strerror}") from None
        headers: dict[str, str] = {}
    else:
        content, headers, url = asyncio.run(_fetch_page(settings, url))
    from aggregator.extract import extract_page  # bs4 and lxml: only this command needs them here

    now = utc_now()
    page = extract_page(content, url, headers=headers, now=now)
    source = SourceSettings(name="extract", url=url if url.startswith("http") else "http://x/")
    record = build_record(None, page, source, feed_url="", fetched_at=now, now=now)
    if record is None:
        raise ExtractError(url, "no title or URL could be extracted")
    return Tracker(settings, None).enrich([record], now=now)[0]


async def _fetch_page(settings: Settings, url: str) -> tuple[bytes, dict[str, str], str]:
    async with Fetcher(settings.fetch) as fetcher:
        result = await fetcher.fetch(url, kind="page")
    return result.content, dict(result.headers), result.final_url


def render(record: Record, output_format: str) -> str:
    """A record as Markdown front matter or as one JSON document."""
    if output_format == "md":
        return render_markdown(record)
    return json.dumps(json.loads(record_to_json_line(record)), indent=2, ensure_ascii=False) + "\n"


def read_records(path: Path) -> Iterator[tuple[str, Record]]:
    """Records from a .jsonl file or a Markdown file, each with where it came from."""
    if path.suffix == ".jsonl":
        for index, record in enumerate(iter_jsonl(path), start=1):
            yield f"{path}:{index}", record
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(str(path), f"cannot read: {exc}") from None
    yield str(path), parse_markdown(text, str(path))


def normalise_imported(record: Record) -> Record:
    """Apply the crawl's normalisation to an imported record without changing given values."""
    web_url = canonical_url(record.web_url) or record.web_url
    amp = canonical_url(record.amp_web_url) if record.amp_web_url else ""
    domain = record.provider.domain or provider_domain(web_url)
    return replace(
        record,
        web_url=web_url,
        amp_web_url=amp,
        cdn_amp_web_url=record.cdn_amp_web_url or amp_cache_url(amp),
        provider=replace(record.provider, domain=domain),
    )


def import_paths(
    settings: Settings, store: Store, paths: Iterable[Path], *, recompute: bool = False
) -> ImportSummary:
    """Import files into the store; values the files give are kept unless `recompute`."""
    files = 0
    records: list[Record] = []
    for path in paths:
        files += 1
        records.extend(normalise_imported(record) for _, record in read_records(path))
    now = utc_now()
    tracker = Tracker(settings, store)
    records = tracker.enrich_imported(records, now=now, recompute=recompute)
    counts = store.upsert_records(records)
    tracker.after_upsert(records, now=now, keep_given=not recompute)
    return ImportSummary(files, len(records), counts.new, counts.updated, counts.unchanged)


def _sealed(settings: Settings, store: Store | None, records: Iterable[Record]) -> Iterator[Record]:
    """Each record with a valid seal (renewed when stale or missing).

    New seals are written back to the store in batches, so the next export finds them valid.
    """
    data_dir = Path(settings.data_dir)
    sealer = Sealer(load_or_create_key(data_dir), instance_id(data_dir))
    pending: list[tuple[str, str]] = []
    try:
        for record in records:
            secured = sealer.renewed(record, record_to_public(record))
            if secured is not None:
                record = replace(record, secured=secured)
                pending.append((record.web_url, secured))
                if len(pending) >= _SEAL_BATCH and store is not None:
                    store.set_secured_many(pending)
                    pending.clear()
            yield record
    finally:
        if store is not None:
            store.set_secured_many(pending)


def export_records(
    settings: Settings, store: Store, request: ExportRequest, *, stdout: TextIO
) -> str:
    """Export the selected records; returns a one-line summary."""

    def select() -> Iterator[StoredRecord]:
        return store.iter_records(
            topic=request.topic, since=request.since, published_only=request.published_only
        )

    records = _sealed(settings, store, (item.record for item in select()))
    if request.extended:
        out_dir = Path(request.out or settings.export.dir)
        return _export_extended(store, select(), records, request, stdout, out_dir)
    if request.out == "-":
        return _export_to_stream(records, request.format, stdout)
    out_dir = Path(request.out or settings.export.dir)
    writer = ExportWriter(out_dir)
    if request.format == "md":
        return _markdown_summary(out_dir, writer.write_markdown(records))
    return _jsonl_summary(out_dir, writer.write_jsonl(records))


def _export_extended(
    store: Store,
    stored: Iterable[StoredRecord],
    records: Iterable[Record],
    request: ExportRequest,
    stdout: TextIO,
    out_dir: Path,
) -> str:
    if request.format != "jsonl":
        raise ConfigError("--extended", "only available with --format jsonl")
    lines = extended_lines(store, stored, records)
    if request.out == "-":
        count = sum(stdout.write(line + "\n") > 0 for line in lines)
        return f"{count} record(s)"
    path = out_dir / "records.extended.jsonl"
    with AtomicStream(path) as stream:
        for line in lines:
            stream.write(json_line_bytes(line))
        changed = stream.commit()
    return f"extended jsonl → {path}: {'written' if changed else 'unchanged'}"


def _export_to_stream(records: Iterable[Record], output_format: str, stdout: TextIO) -> str:
    count = 0
    for record in records:
        count += 1
        stdout.write(
            render_markdown(record) if output_format == "md" else record_to_json_line(record) + "\n"
        )
    return f"{count} record(s)"


def export_configured(settings: Settings, store: Store) -> list[str]:
    """Refresh the public export tree: published records in every configured format.

    The published records are read from the store a page at a time, newest first
    (`Store.export_reader`); each is sealed, turned into its public fields once (related
    entries rendered once for all the records listing them, `EntryMemo`), and its
    Markdown file written, by this process and, for a larger store on several CPUs, by
    helper processes beside it (`export_pages`). The pages come back in order to the
    JSONL stream and the feed collector, so memory grows with the number of records only
    by their ids. One summary per configured format.
    """
    marker = store.change_marker()  # before reading: a change made meanwhile exports again
    reader = store.export_reader()
    ids = reader.published_ids()
    size = export_read.PAGE_SIZE
    pages = [ids[start : start + size] for start in range(0, len(ids), size)]
    with _TreeExport(settings) as export:
        job = export.page_job(settings)
        helpers = helper_count(settings.fetch.parse_workers, len(pages), default_workers())

        def keep_records(index: int) -> bool:
            return export.feeds is not None and index * size < _FEED_WINDOW

        for page in render_pages(job, store, pages, helpers, keep_records):
            export.add_page(page)
            store.set_secured_many(list(page.seals))
        summaries = export.finish()
    write_store_mark(Path(settings.export.dir), marker, export_fingerprint(settings))
    return summaries


class _TreeExport:
    """One run over the configured export tree: `add_page` after page, then `finish`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out_dir = Path(settings.export.dir)
        formats = settings.export.formats
        topics = [topic.name for topic in settings.topics]
        size = settings.export.feed_size
        feeds = "feeds" in formats
        self.feeds = FeedCollector(topics, size=size, window=_FEED_WINDOW) if feeds else None
        writer = ExportWriter(self.out_dir)
        self.markdown = writer.markdown_tree() if "md" in formats else None
        self.jsonl = writer.jsonl_stream() if "jsonl" in formats else None  # opened last

    def page_job(self, settings: Settings) -> PageJob:
        """What rendering a page of this export needs, for this process and its helpers."""
        data_dir = Path(settings.data_dir)
        return PageJob(
            storage_url=settings.storage.url,
            busy_timeout_seconds=settings.storage.busy_timeout_seconds,
            out_dir=str(self.out_dir),
            key=load_or_create_key(data_dir),
            instance=instance_id(data_dir),
            markdown=self.markdown is not None,
            jsonl=self.jsonl is not None,
        )

    def add_page(self, page: RenderedPage) -> None:
        """Take one rendered page (its Markdown files already written) into every writer."""
        if self.markdown is not None:
            for url, name, written in page.files:
                self.markdown.note(url, name, written)
        if self.jsonl is not None:
            self.jsonl.write(page.jsonl)
        if self.feeds is not None:
            for record in page.records:
                self.feeds.offer(record)

    def finish(self) -> list[str]:
        """Complete every writer; one summary line per configured format, in config order."""
        done: dict[str, str] = {}
        if self.markdown is not None:
            done["md"] = _markdown_summary(self.out_dir, self.markdown.finish())
        if self.jsonl is not None:
            done["jsonl"] = _jsonl_summary(self.out_dir, self.jsonl.commit())
        if self.feeds is not None:
            done["feeds"] = _write_feeds(self.settings, self.feeds)
        return [done[fmt] for fmt in self.settings.export.formats]

    def __enter__(self) -> _TreeExport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.jsonl is not None:
            self.jsonl.abort()


def _markdown_summary(out_dir: Path, stats: ExportStats) -> str:
    return (
        f"markdown → {out_dir}: {stats.written} written, "
        f"{stats.unchanged} unchanged, {stats.removed} removed"
    )


def _jsonl_summary(out_dir: Path, changed: bool) -> str:
    return f"jsonl → {out_dir / 'records.jsonl'}: {'written' if changed else 'unchanged'}"


def _write_feeds(settings: Settings, feeds: FeedCollector) -> str:
    """Write RSS, Atom and JSON Feed files for all published records and for each topic."""
    out_dir = Path(settings.export.dir)
    stats = feeds.write(out_dir, base_url=settings.export.base_url, now=utc_now())
    return f"feeds: {stats.written} written, {stats.unchanged} unchanged, {stats.removed} removed"


def verify_paths(settings: Settings, paths: Iterable[Path]) -> list[VerifyOutcome]:
    """Verify the seal of every record in the given files."""
    key = load_or_create_key(Path(settings.data_dir))
    outcomes: list[VerifyOutcome] = []
    for path in paths:
        try:
            for where, record in read_records(path):
                result = verify_record(record, key)
                outcomes.append(VerifyOutcome(where, result.ok, result.message))
        except AggregatorError as exc:
            outcomes.append(VerifyOutcome(str(path), False, str(exc)))
    return outcomes
