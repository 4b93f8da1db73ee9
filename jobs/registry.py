"""The daemon's job list: one entry per job module, with its interval from the settings."""

from __future__ import annotations

from aggregator.daemon import DaemonSettings, JobSpec
from jobs import crawl, heartbeat, prune
from jobs.export import ExportJob


def default_jobs(daemon: DaemonSettings) -> list[JobSpec]:
    """crawl, export, heartbeat, and prune unless retention is off."""
    jobs = [
        JobSpec("crawl", crawl.run, daemon.crawl_tick),
        JobSpec("export", ExportJob().run, daemon.export_debounce),
        JobSpec("heartbeat", heartbeat.run, daemon.heartbeat_every),
    ]
    if daemon.retention_days is not None:
        jobs.append(JobSpec("prune", prune.run, daemon.prune_every))
    return jobs
