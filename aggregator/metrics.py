"""Prometheus metrics: the metric objects on a dedicated registry, and tiny recorders.

    REGISTRY                                  ours, never prometheus-client's global one
    record_fetch(host, outcome, seconds)      aggregator_fetches_total{host,outcome}
                                              aggregator_fetch_duration_seconds
    record_records(new, updated)              aggregator_records_{new,updated}_total
    set_sources_by_state(counts)              aggregator_sources{state}
    observe_job(name, seconds, failed)        aggregator_job_duration_seconds{job}
                                              aggregator_job_failures_total{job}
    observe_export(seconds)                   aggregator_export_duration_seconds
    record_webhook(host, delivered)           aggregator_webhook_deliveries_total{host,outcome}
    render_metrics(registry)                  → (body, content type) for GET /metrics

The recorders never raise: metrics must not break a crawl.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from aggregator.store.values import SOURCE_STATES

FETCH_OUTCOMES = ("ok", "not_modified", "error")
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

REGISTRY = CollectorRegistry(auto_describe=True)

FETCHES = Counter(
    "aggregator_fetches",
    "Feed and page fetches by outcome (ok, not_modified, error) and host.",
    ("host", "outcome"),
    registry=REGISTRY,
)
FETCH_SECONDS = Histogram(
    "aggregator_fetch_duration_seconds",
    "Latency of one HTTP fetch, in seconds.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECORDS_NEW = Counter(
    "aggregator_records_new", "Records stored for the first time.", registry=REGISTRY
)
RECORDS_UPDATED = Counter(
    "aggregator_records_updated", "Stored records whose content changed.", registry=REGISTRY
)
SOURCES = Gauge("aggregator_sources", "Sources by health state.", ("state",), registry=REGISTRY)
JOB_SECONDS = Histogram(
    "aggregator_job_duration_seconds",
    "Duration of one run of a scheduled job, in seconds.",
    ("job",),
    buckets=_JOB_BUCKETS,
    registry=REGISTRY,
)
JOB_FAILURES = Counter(
    "aggregator_job_failures", "Runs of a scheduled job that failed.", ("job",), registry=REGISTRY
)
EXPORT_SECONDS = Histogram(
    "aggregator_export_duration_seconds",
    "Duration of one export run, in seconds.",
    buckets=_JOB_BUCKETS,
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "aggregator_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, failed) and host.",
    ("host", "outcome"),
    registry=REGISTRY,
)


def record_fetch(host: str, outcome: str, seconds: float) -> None:
    """Count one fetch of `host` ("ok", "not_modified" or "error") and observe its latency."""
    FETCHES.labels(host=(host or "-").lower(), outcome=outcome).inc()
    FETCH_SECONDS.observe(max(0.0, seconds))


def record_records(new: int, updated: int) -> None:
    """Add the new and updated counts of one upsert."""
    RECORDS_NEW.inc(max(0, new))
    RECORDS_UPDATED.inc(max(0, updated))


def set_sources_by_state(counts: Mapping[str, int]) -> None:
    """Set the gauge of every known state (missing states are 0, unknown ones are kept)."""
    for state in (*SOURCE_STATES, *(s for s in counts if s not in SOURCE_STATES)):
        SOURCES.labels(state=state).set(counts.get(state, 0))


def observe_job(name: str, seconds: float, failed: bool) -> None:
    """Observe one run of job `name`; count it as a failure when `failed`."""
    JOB_SECONDS.labels(job=name).observe(max(0.0, seconds))
    failures = JOB_FAILURES.labels(job=name)
    if failed:
        failures.inc()


def observe_export(seconds: float) -> None:
    """Observe the duration of one export run."""
    EXPORT_SECONDS.observe(max(0.0, seconds))


def record_webhook(host: str, delivered: bool) -> None:
    """Count one webhook delivery attempt to `host`."""
    outcome = "delivered" if delivered else "failed"
    WEBHOOKS.labels(host=(host or "-").lower(), outcome=outcome).inc()


def render_metrics(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The Prometheus text exposition of `registry`, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
