"""The export tree's pages of records rendered side by side, here and in helper processes.

    export_configured (operations.py)
      the published ids, newest first, cut into pages of `export_read.PAGE_SIZE`
      each page, in this process or in a helper:  PageRenderer.render(ids)
          read the page (`ExportReader`), check or renew each seal, the public form
          (`EntryMemo`), its Markdown file written, its JSON line, and the sealed records
          while the feeds may still pick them
      here, in page order:  the Markdown manifest (`MarkdownTree.note`), the JSONL stream,
          the feed collector, the new seals written back (`Store.set_secured_many`)

Rendering is nearly all of an export's CPU time, and pages do not depend on each other, so
a second core halves a cold export that would otherwise run alone at the end of a fetch.
The merge in page order keeps every file byte for byte what one process writes (new seals
aside: their nonces are random); tests/test_export_pages.py checks it.

A helper that fails (an exception, or its process dies) costs only time: its page is
rendered again here, where an error is raised as the one-process path raises it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from aggregator.export.entries import EntryMemo
from aggregator.export.files import json_line_bytes, write_markdown_file
from aggregator.export.seal import Sealer
from aggregator.models import Record
from aggregator.store import Store
from aggregator.workpool import WORKER_MODULES, forkserver_context, prepare_worker

log = logging.getLogger(__name__)

PAGES_AHEAD = 2
"""Pages queued for each helper."""
WAITING_HERE = 4
"""Pages rendered here that may wait for an earlier page of a helper (about 1 MB each)."""


@dataclass(frozen=True, slots=True)
class PageJob:
    """What rendering a page needs besides its ids, sent once to each helper."""

    storage_url: str
    busy_timeout_seconds: float
    out_dir: str
    key: bytes
    instance: str
    markdown: bool
    jsonl: bool


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """One page of the export, done: its Markdown files already written.

    `files` holds (web URL, file name, written) per record, `jsonl` the page's JSON lines,
    `seals` the (web URL, seal) of every record sealed anew, `records` the sealed records
    when the feeds asked for them (from a helper without their related entries, which no
    feed shows: they cross a pipe)."""

    files: tuple[tuple[str, str, bool], ...]
    jsonl: bytes
    seals: tuple[tuple[str, str], ...]
    records: tuple[Record, ...]


class PageRenderer:
    """Renders pages of published records for one export run (one per process)."""

    def __init__(self, job: PageJob, store: Store, *, light_records: bool = False) -> None:
        self._job = job
        self._light = light_records  # records kept for the feeds lose their related list
        self._out_dir = Path(job.out_dir)
        self._reader = store.export_reader()
        self._sealer = Sealer(job.key, job.instance)
        self._memo = EntryMemo()

    def render(self, ids: Sequence[int], keep_records: bool) -> RenderedPage:
        """The page of `ids`: files written, lines and seals returned (see `RenderedPage`)."""
        files: list[tuple[str, str, bool]] = []
        lines: list[bytes] = []
        seals: list[tuple[str, str]] = []
        kept: list[Record] = []
        for record in self._reader.page(ids):
            form = self._memo.public_form(record)
            secured = self._sealer.renewed(record, form.fields, form.canonical())
            if secured is not None:
                record = replace(record, secured=secured)
                form.fields["secured"] = secured
                seals.append((record.web_url, secured))
            if self._job.markdown:
                name, written = write_markdown_file(self._out_dir, record, form.markdown())
                files.append((record.web_url, name, written))
            if self._job.jsonl:
                lines.append(json_line_bytes(form.json_line()))
            if keep_records:
                kept.append(replace(record, related=()) if self._light else record)
        return RenderedPage(tuple(files), b"".join(lines), tuple(seals), tuple(kept))


def helper_count(parse_workers: int | None, pages: int, cpus: int) -> int:
    """Helper processes for an export of `pages` pages: one fewer than the crawl's workers
    (`fetch.parse_workers`; unset, one per CPU, `cpus`), since this process renders too,
    and never more than the pages after the first."""
    workers = cpus if parse_workers is None else parse_workers
    return max(0, min(workers - 1, pages - 1))


def render_pages(
    job: PageJob,
    store: Store,
    pages: Sequence[Sequence[int]],
    helpers: int,
    keep_records: Callable[[int], bool],
) -> Iterator[RenderedPage]:
    """Every page rendered, yielded in page order; `keep_records(i)` says whether page i's
    sealed records are wanted. Up to `helpers` processes render beside this one."""
    here = PageRenderer(job, store)

    def render_here(index: int) -> RenderedPage:
        return here.render(pages[index], keep_records(index))

    pool = _Helpers(job, helpers, pages, keep_records) if helpers > 0 else None
    try:
        yield from _in_order(len(pages), render_here, pool, PAGES_AHEAD * max(helpers, 1))
    finally:
        if pool is not None:
            pool.close()


class _Helpers:
    """The helper processes of one export run; `submit` returns None once they are gone."""

    def __init__(
        self,
        job: PageJob,
        helpers: int,
        pages: Sequence[Sequence[int]],
        keep_records: Callable[[int], bool],
    ) -> None:
        self._pages = pages
        self._keep_records = keep_records
        self._executor = _start_helpers(job, helpers)

    def submit(self, index: int) -> Future[RenderedPage] | None:
        """Page `index` queued for a helper (None: render it here)."""
        if self._executor is None:
            return None
        try:
            return self._executor.submit(
                _render_in_helper, self._pages[index], self._keep_records(index)
            )
        except Exception as exc:  # a broken pool takes no more work
            log.warning("export helpers unavailable, rendering here: %r", exc)
            self.close()
            return None

    def close(self) -> None:
        """Stop the helpers (their queued pages are dropped)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _in_order(
    count: int,
    render_here: Callable[[int], RenderedPage],
    helpers: _Helpers | None,
    ahead: int,
) -> Iterator[RenderedPage]:
    """Pages 0..count-1 in order. The next page to yield is rendered here when nobody has
    it yet (helpers start cold, this process does not); the helpers keep `ahead` of the
    following pages queued. While a helper's page is awaited, this process renders the next
    unassigned pages, at most `WAITING_HERE` of them held, so memory stays bounded."""
    queued: dict[int, Future[RenderedPage]] = {}
    ready: dict[int, RenderedPage] = {}
    assigned = 0

    def top_up() -> None:
        nonlocal assigned
        while helpers is not None and assigned < count and len(queued) < ahead:
            future = helpers.submit(assigned)
            if future is None:
                return
            queued[assigned] = future
            assigned += 1

    for index in range(count):
        if index == assigned:  # nobody has it: render it here, the helpers take the next
            assigned += 1
            top_up()
            yield render_here(index)
            continue
        top_up()
        future = queued.pop(index, None)
        while future is not None and not future.done() and assigned < count:
            if len(ready) >= WAITING_HERE:
                break
            ready[assigned] = render_here(assigned)
            assigned += 1
            top_up()
        if future is not None:
            yield _helper_result(future, render_here, index)
        else:
            yield ready.pop(index)


def _helper_result(
    future: Future[RenderedPage], render_here: Callable[[int], RenderedPage], index: int
) -> RenderedPage:
    """The helper's page `index`, or that page rendered here when the helper failed."""
    try:
        return future.result()
    except Exception as exc:  # the page again here: a real error is raised from there
        log.warning("an export helper failed on page %d, rendering it here: %r", index, exc)
        return render_here(index)


def _start_helpers(job: PageJob, helpers: int) -> ProcessPoolExecutor | None:
    """The helpers' executor; its processes start with the first page queued."""
    try:
        return ProcessPoolExecutor(
            helpers,
            mp_context=forkserver_context(WORKER_MODULES),
            initializer=_start_helper,
            initargs=(os.getpid(), job),
        )
    except (OSError, ValueError) as exc:  # no processes here (limits, sandbox…)
        log.warning("cannot start export helpers, exporting in one process: %s", exc)
        return None


_renderer: PageRenderer | None = None


def _start_helper(owner: int, job: PageJob) -> None:
    """A helper's initialiser: the worker set-up of the crawl's pool, then its own store."""
    global _renderer
    prepare_worker(owner)
    store = Store(job.storage_url, busy_timeout_seconds=job.busy_timeout_seconds)
    _renderer = PageRenderer(job, store, light_records=True)  # the feeds never read them


def _render_in_helper(ids: Sequence[int], keep_records: bool) -> RenderedPage:
    if _renderer is None:
        raise RuntimeError("export helper not initialised")
    return _renderer.render(ids, keep_records)
