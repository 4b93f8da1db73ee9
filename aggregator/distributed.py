"""Distributed mode (``scheduler.mode: distributed``): a procrastinate job queue in PostgreSQL.

    scheduler  `aggregator run` keeps its APScheduler jobs; its crawl tick calls
               `defer_due`: one ``crawl_source`` job per due source, with
               ``queueing_lock`` and ``lock`` = ``source:NAME``, so a source is never
               queued twice nor crawled twice at once, however many schedulers run
    pages      its enrich tick queues one ``enrich_pages`` job (a batch of article pages
               still to fetch) when there are any, with ``queueing_lock`` and ``lock`` =
               ``pages``: one batch queued and one running at a time, never the same page twice
    worker     `aggregator worker --concurrency N`: runs the jobs; each one is the SAME
               pipeline as `aggregator fetch`, with ``CrawlOptions(source_names=(name,))``,
               or the same `enrich_pending` as the local daemon's enrich job
    recovery   every worker also re-queues the jobs of workers whose heartbeat stopped
               (killed with -9, host lost): procrastinate's stalled-job recovery
    cleanup    and, once an hour, deletes finished crawl jobs: succeeded ones after a day,
               failed, cancelled or aborted ones after a week (kept longer for diagnosis)

Exactly once: records are keyed by the store's unique identities (native ON CONFLICT), a
retried job re-reads the feed and finds its entries stored (unchanged), and the source
claim is owned by the JOB (``job:ID``), so the retry of a killed job takes over its lease.
Story linking runs under a PostgreSQL advisory lock (`Store.linking_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import procrastinate
import typer
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

from aggregator.cli_options import ConfigOption
from aggregator.dates import Clock, utc_now
from aggregator.enrich import enrich_pending
from aggregator.errors import AggregatorError, ConfigError
from aggregator.pipeline import CrawlOptions, crawl
from aggregator.settings import Settings, load_settings
from aggregator.store import Store
from aggregator.tracking import Tracker

log = logging.getLogger(__name__)

TASK_NAME = "crawl_source"
PAGES_TASK = "enrich_pages"
PAGES_LOCK = "pages"
PAGE_BATCH = 50
QUEUE = "crawl"
CONTEXT_KEY = "aggregator"
EXIT_USAGE = 2
SUCCEEDED_JOBS_KEPT_HOURS = 24
FAILED_JOBS_KEPT_HOURS = 7 * 24
CLEANUP_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What every job of a worker process shares: settings, the open store, and the
    tracker whose story index lives as long as the worker (caught up, not rebuilt, by
    each job: see `aggregator.tracking`)."""

    settings: Settings
    store: Store
    tracker: Tracker
    clock: Clock = utc_now


def conninfo(storage_url: str) -> str:
    """The libpq connection string of a ``postgresql+psycopg://`` storage URL."""
    url = make_url(storage_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError("storage.url", "distributed mode needs a postgresql+psycopg:// URL")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(storage_url: str) -> procrastinate.App:
    """A procrastinate app on the store's database, with the crawl task registered."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(storage_url))
    app = procrastinate.App(connector=connector)
    app.task(name=TASK_NAME, queue=QUEUE, pass_context=True)(crawl_source_task)
    app.task(name=PAGES_TASK, queue=QUEUE, pass_context=True)(enrich_pages_task)
    return app


def source_lock(name: str) -> str:
    """The queueing lock and run lock of one source."""
    return f"source:{name}"


async def crawl_source_task(context: procrastinate.JobContext, source_name: str) -> None:
    """Crawl one source with the shared pipeline; the claim is owned by this job."""
    worker: WorkerContext = context.additional_context[CONTEXT_KEY]
    options = CrawlOptions(source_names=(source_name,), claim_owner=f"job:{context.job.id}")
    reports = await crawl(
        worker.settings, worker.store, options=options, clock=worker.clock, tracker=worker.tracker
    )
    for report in reports:
        log.info("job %s crawled %s: %s", context.job.id, report.source, report.status)


async def enrich_pages_task(context: procrastinate.JobContext, limit: int) -> None:
    """Fetch up to `limit` pending article pages and relink their records."""
    worker: WorkerContext = context.additional_context[CONTEXT_KEY]
    report = await enrich_pending(
        worker.settings, worker.store, limit=limit, clock=worker.clock, tracker=worker.tracker
    )
    log.info(
        "job %s enriched %d of %d page(s), %d still pending",
        context.job.id,
        report.enriched,
        report.attempted,
        report.still_pending,
    )


async def defer_page_batch(settings: Settings, *, limit: int = PAGE_BATCH) -> bool:
    """Queue one batch of pending article pages; False when a batch is already queued."""
    app = make_app(settings.storage.url)
    async with app.open_async():
        deferrer = app.configure_task(
            PAGES_TASK, lock=PAGES_LOCK, queueing_lock=PAGES_LOCK, queue=QUEUE
        )
        try:
            await deferrer.defer_async(limit=limit)
        except AlreadyEnqueued:
            return False
    return True


async def defer_due(
    settings: Settings, store: Store, names: Sequence[str], *, next_check: datetime
) -> list[str]:
    """Queue one crawl job per source in `names`; return those queued (not already queued).

    Each queued source gets `next_check` as its provisional next check, so the next tick
    does not queue it again; the crawl itself may then schedule it otherwise.
    """
    queued: list[str] = []
    app = make_app(settings.storage.url)
    async with app.open_async():
        for name in names:
            lock = source_lock(name)
            deferrer = app.configure_task(TASK_NAME, lock=lock, queueing_lock=lock, queue=QUEUE)
            try:
                await deferrer.defer_async(source_name=name)
            except AlreadyEnqueued:
                pass  # queued by an earlier tick or another scheduler
            else:
                queued.append(name)
            store.set_next_check(name, next_check)
    return queued


async def recover_stalled(app: procrastinate.App, stalled_after: float) -> int:
    """Re-queue the running jobs of workers silent for `stalled_after` seconds."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
    count = 0
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
        except Exception as exc:  # another worker may have retried it first
            log.info("stalled job %s not retried: %s", job.id, exc)
            continue
        log.warning("re-queued stalled job %s (%s)", job.id, job.task_kwargs)
        count += 1
    return count


async def remove_finished_jobs(app: procrastinate.App) -> None:
    """Delete the crawl queue's finished jobs (and their events) once they are old enough.

    Every worker does this; the DELETE is idempotent, so several at once are harmless.
    """
    manager = app.job_manager
    await manager.delete_old_jobs(nb_hours=SUCCEEDED_JOBS_KEPT_HOURS, queue=QUEUE)
    await manager.delete_old_jobs(
        nb_hours=FAILED_JOBS_KEPT_HOURS,
        queue=QUEUE,
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )


async def _recovery_loop(app: procrastinate.App, stalled_after: float) -> None:
    loop = asyncio.get_running_loop()
    next_cleanup = loop.time()
    while True:
        await asyncio.sleep(max(0.5, stalled_after / 3))
        try:
            await recover_stalled(app, stalled_after)
            if loop.time() >= next_cleanup:
                await remove_finished_jobs(app)
                next_cleanup = loop.time() + CLEANUP_INTERVAL_S
        except Exception:  # keep going: one failed pass must not stop the worker
            log.exception("stalled-job recovery or job cleanup failed")


async def run_worker(settings: Settings, concurrency: int, *, clock: Clock = utc_now) -> None:
    """Run crawl jobs until SIGTERM/SIGINT, `concurrency` at a time in this process."""
    stalled_after = settings.scheduler.stalled_after
    app = make_app(settings.storage.url)
    storage = settings.storage
    with Store(storage.url, busy_timeout_seconds=storage.busy_timeout_seconds) as store:
        async with app.open_async():
            recovery = asyncio.create_task(_recovery_loop(app, stalled_after))
            try:
                await app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=concurrency,
                    additional_context={
                        CONTEXT_KEY: WorkerContext(settings, store, Tracker(settings, store), clock)
                    },
                    update_heartbeat_interval=max(0.2, stalled_after / 4),
                    stalled_worker_timeout=stalled_after,
                )
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery


def worker_command(
    config: ConfigOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-n", min=1, help="Jobs run at once by this worker.")
    ] = 4,
) -> None:
    """Run a distributed-mode worker: crawl the sources that `aggregator run` queues.

    Start as many as you like, on any host that reaches the PostgreSQL database.

    Example: aggregator worker --config config.yaml --concurrency 8
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aggregator").setLevel(logging.INFO)
    try:
        settings = load_settings(config)
        asyncio.run(run_worker(settings, concurrency))
    except AggregatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


if __name__ == "__main__":
    typer.run(worker_command)
