"""Story linking in a process of its own, so that linking and crawling use two cores.

    with LinkerProcess(settings, store) as linker:      stands in for a Tracker
        linker.after_upsert(records, now=..., features=..., defer=True)
        linker.flush(now=...)

Linking is the crawl's longest chain of pure-Python work. In a thread of the crawling process
it shares one interpreter lock with the HTTP client, the parsers' results and the store's
writes; in a process of its own it runs beside them. The process holds a `Tracker` (and so
the story index) and a `Store` on the same database. Each call is sent over a pipe and
answered once its work is committed, so a caller that waited for `after_upsert` knows its
records are linked, exactly as with an in-process Tracker. Calls are serialised, as the
Tracker serialises them anyway.

An `AggregatorError` raised in the process (the database is unavailable, say) is raised again
in the caller, as a `StorageError` with its message. If the process dies, the rest of the
run links in-process: the in-process Tracker rebuilds its index from the store, where
records stored but not linked are found and linked with the next batch, and the refresh
queue says what still needs a refresh.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aggregator.errors import AggregatorError, StorageError
from aggregator.models import Record
from aggregator.settings import Settings
from aggregator.workpool import exit_with, forkserver_context, keep_inherited_pages_shared

if TYPE_CHECKING:  # the Tracker itself is imported where one is made: a re-poll makes none
    from aggregator.linkbatch import LinkBatch
    from aggregator.store import Store
    from aggregator.stories import LinkFeatures
    from aggregator.tracking import Tracker

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 30.0
FLUSH_CHUNK = 500  # records a flush plans, rescores and writes at a time (as Tracker.flush)


class LinkerProcess:
    """A Tracker's `after_upsert` and `flush`, run in a child process (started lazily)."""

    def __init__(self, settings: Settings, store: Store, *, preload: Sequence[str] = ()) -> None:
        self.settings = settings
        self.store = store
        self._preload = preload
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._fallback: Tracker | None = None
        self._closed = False

    def __enter__(self) -> LinkerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def after_upsert(
        self,
        records: Sequence[Record],
        *,
        now: datetime,
        keep_given: bool = False,
        features: Sequence[LinkFeatures] = (),
        defer: bool = False,
    ) -> None:
        """`Tracker.after_upsert`, in the linker process; returns once it is committed.

        With `features` given, the records cross as `for_linking` makes them: linking
        reads their text only to compute the features, and never their images or quality
        reasons (about ten small objects a record to pickle and unpickle)."""
        if records:
            sent = [for_linking(r) for r in records] if features else list(records)
            self._call("link", sent, now, keep_given, list(features), defer)

    def after_upsert_many(self, batches: Sequence[LinkBatch]) -> None:
        """`Tracker.after_upsert_many`, in the linker process; returns once it is
        committed. Records whose batch has features cross as `for_linking` makes them."""
        if batches:
            sent = [
                replace(b, records=[for_linking(r) for r in b.records]) if b.features else b
                for b in batches
            ]
            self._call("link_many", sent)

    def flush(self, *, now: datetime) -> int:
        """`Tracker.flush`, shared with the linker process; returns how many records waited.

        On SQLite the linker plans each chunk and this process finishes it
        (`_finish_flush`); on PostgreSQL, where other processes may link meanwhile, the
        linker flushes alone under the linking lock. A process never started (a re-poll
        where nothing changed) is not started to find the refresh queue empty: the store
        is asked first."""
        if (
            self._conn is None
            and self._fallback is None
            and not self.store.queued_for_refresh()
            and not self.store.unlinked_ids(1)
        ):
            return 0
        if self.settings.storage.url.startswith("postgresql"):
            # other processes may link beside this one: the linking lock must cover each
            # chunk from its plan to its write, so the linker does the whole flush
            return int(self._call("flush", now) or 0)
        waiting = int(self._call("flush_begin", now, FLUSH_CHUNK) or 0)
        if waiting:
            self._finish_flush(now)
        return waiting

    def _finish_flush(self, now: datetime) -> None:
        """Rescore and write each chunk the linker process plans, while it plans the next.

        The index's part of a refresh (heat, related lists) needs the linker's index; the
        rest (reading the records back, rescoring them, writing) does not, and here it
        runs beside it instead of after it. When a plan was ready before this side had
        written the last chunk, the linker is asked to rescore the next chunk itself, so
        the two sides share the work whichever is faster. A linker that dies meanwhile
        hands over to this process, which then refreshes what is still queued."""
        from aggregator.tracking import Tracker

        scorer = Tracker(self.settings, self.store)
        before = self._fallback
        with ThreadPoolExecutor(1, thread_name_prefix="linker-plan") as planner:
            planned = planner.submit(self._call, "flush_next", False)
            while True:
                waited_for_us = planned.done()  # this side is the slower: share its work
                plan = planned.result()
                if plan is None:
                    break
                planned = planner.submit(self._call, "flush_next", waited_for_us)
                updates = plan.updates
                if updates is None:
                    updates = tuple(scorer.finish_refresh(plan).values())
                self.store.apply_tracking(list(updates), dequeue=plan.keys)
        if self._fallback is not before and self._fallback is not None:
            self._fallback.flush(now=now)

    def warm_up(self) -> None:
        """Start the process now, in the background, so that it has loaded the store and
        the story index's modules by the time the first batch arrives (a crawl calls this
        when its first feed has changed: an unchanged re-poll never starts the process)."""
        if self._conn is None and self._fallback is None and not self._closed:
            threading.Thread(target=self._start_quietly, name="linker-start", daemon=True).start()

    def _start_quietly(self) -> None:
        with self._lock:
            if self._closed or self._fallback is not None:
                return
            try:
                self._connection()
            except (OSError, RuntimeError) as exc:  # the first call tries again and reports
                log.warning("could not start the linker process ahead of time: %s", exc)

    def close(self) -> None:
        """Stop the process (it finishes the call in progress first)."""
        with self._lock:
            self._closed = True
            process, conn = self._process, self._conn
            self._process = self._conn = None
        if process is None or conn is None:
            return
        with contextlib.suppress(OSError):
            conn.send(("stop",))
        process.join(STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
        conn.close()

    def _call(self, *message: Any) -> Any:
        with self._lock:
            if self._fallback is not None:
                return _run(self._fallback, message)
            conn = self._connection()
            try:
                conn.send(message)
                reply = conn.recv()
            except (EOFError, OSError) as exc:
                return self._fall_back(message, exc)
        return _unwrap(reply)

    def _connection(self) -> Connection:
        if self._closed:
            raise RuntimeError("the linker process is closed")
        if self._conn is None:
            context = forkserver_context(self._preload)
            parent, child = context.Pipe()
            process = context.Process(  # type: ignore[attr-defined]
                target=serve,
                args=(self.settings, child, os.getpid()),
                name="aggregator-linker",
                daemon=True,
            )
            process.start()
            child.close()
            self._process, self._conn = process, parent
        return self._conn

    def _fall_back(self, message: tuple[Any, ...], exc: BaseException) -> Any:
        log.error("the linker process died (%s); linking in this process from now on", exc)
        if self._process is not None:
            self._process.join(1.0)
        self._process = self._conn = None
        from aggregator.tracking import Tracker

        self._fallback = Tracker(self.settings, self.store)
        return _run(self._fallback, message)


def for_linking(record: Record) -> Record:
    """`record` without what linking a record with known features never reads."""
    return replace(record, text="", excerpt="", images=(), related=(), quality_reasons=())


def _unwrap(reply: tuple[Any, ...]) -> Any:
    kind, value = reply
    if kind == "ok":
        return value
    if kind == "error":
        raise StorageError(value)
    raise StorageError(f"linking failed in the linker process: {value}")


def _run(tracker: Tracker, message: tuple[Any, ...]) -> Any:
    kind, *args = message
    if kind == "link":
        records, now, keep_given, features, defer = args
        tracker.after_upsert(
            records, now=now, keep_given=keep_given, features=features, defer=defer
        )
        return None
    if kind == "link_many":
        tracker.after_upsert_many(args[0])
        return None
    if kind == "flush":
        return tracker.flush(now=args[0])
    if kind == "flush_begin":
        return tracker.flush_begin(now=args[0], chunk=args[1])
    if kind == "flush_next":
        return tracker.flush_next(finish=args[0])
    raise ValueError(f"unknown linker call {kind!r}")


def serve(settings: Settings, conn: Connection, owner: int) -> None:
    """The linker process: answer calls until told to stop or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    exit_with(owner)  # the pipe says so too, but not while a call runs
    keep_inherited_pages_shared()
    from aggregator.store import Store

    storage = settings.storage
    with Store(storage.url, busy_timeout_seconds=storage.busy_timeout_seconds) as store:
        from aggregator.tracking import Tracker

        tracker = Tracker(settings, store)
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone (killed, say): nothing is half-done here
            if message[0] == "stop":
                return
            conn.send(_answer(tracker, message))


def _answer(tracker: Tracker, message: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", _run(tracker, message)
    except AggregatorError as exc:  # by message: not every error class survives pickling
        return "error", str(exc)
    except Exception as exc:  # a bug: say so here and in the parent, keep serving
        log.exception("bug in the linker process")
        return "bug", repr(exc)
