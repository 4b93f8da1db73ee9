"""The daemon's job list: one entry per job module, with its interval from the settings."""

from __future__ import annotations

from aggregator.daemon import DaemonSettings, JobSpec
from aggregator.settings import Settings
from jobs import crawl, enrich, heartbeat, prune
from jobs.export import ExportJob


def default_jobs(daemon: DaemonSettings, settings: Settings | None = None) -> list[JobSpec]:
    """crawl, page enrichment, export, heartbeat, and prune when a retention is set."""
    jobs = [
        JobSpec("crawl", crawl.run, daemon.crawl_tick),
        JobSpec("enrich", enrich.run, daemon.crawl_tick * 4),
        JobSpec("export", ExportJob().run, daemon.export_debounce),
        JobSpec("heartbeat", heartbeat.run, daemon.heartbeat_every),
    ]
    topics = settings.topics if settings is not None else ()
    if daemon.retention_days is not None or any(t.retention_days for t in topics):
        jobs.append(JobSpec("prune", prune.run, daemon.prune_every))
    return jobs
