"""The export server on a real loopback port: types, 304s, traversal, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from aggregator import metrics
from aggregator.serve import (
    Readiness,
    build_app,
    is_loopback,
    parse_listen,
    resolve_export_path,
    start_http,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


class Server:
    """Runs an aiohttp app on 127.0.0.1:<free port> in a background event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def __enter__(self) -> Server:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_http(self.app, "127.0.0.1", 0), self.loop)
        self.runner = future.result(timeout=30)
        self.port = int(self.runner.addresses[0][1])
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)

    def get(self, raw_path: str, headers: dict[str, str] | None = None) -> Reply:
        """GET `raw_path` exactly as written (no client-side normalisation)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", raw_path, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    (root / "feeds").mkdir(parents=True)
    (root / "2026-03-01-story-0123abcd.md").write_text("---\ntitle: x\n---\n")
    (root / "records.jsonl").write_text('{"title": "x"}\n')
    (root / "stats.json").write_text("{}")
    (root / "feeds" / "all.rss").write_text("<rss/>")
    (root / "feeds" / "all.atom").write_text("<feed/>")
    (root / "feeds" / "all.json").write_text("{}")
    (root / ".manifest.json").write_text('{"files": {}}')
    (tmp_path / "secret.txt").write_text("TOP-SECRET")
    (root / "escape.md").symlink_to(tmp_path / "secret.txt")
    return root


@contextmanager
def serving(export_dir: Path, **kwargs: object) -> Iterator[Server]:
    readiness = kwargs.pop("readiness", Readiness(database=lambda: None))
    assert isinstance(readiness, Readiness)
    app = build_app(export_dir, None, metrics.REGISTRY, readiness)
    with Server(app) as server:
        yield server


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/2026-03-01-story-0123abcd.md", "text/markdown; charset=utf-8"),
        ("/records.jsonl", "application/x-ndjson"),
        ("/feeds/all.rss", "application/rss+xml"),
        ("/feeds/all.atom", "application/atom+xml"),
        ("/feeds/all.json", "application/feed+json"),
        ("/stats.json", "application/json"),
    ],
)
def test_content_types(export_dir: Path, path: str, expected: str) -> None:
    with serving(export_dir) as server:
        reply = server.get(path)
    assert reply.status == 200
    assert reply.content_type == expected
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_conditional_get_answers_304(export_dir: Path) -> None:
    with serving(export_dir) as server:
        first = server.get("/records.jsonl")
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        assert etag and modified
        by_etag = server.get("/records.jsonl", {"If-None-Match": etag})
        by_date = server.get("/records.jsonl", {"If-Modified-Since": modified})
        other = server.get("/records.jsonl", {"If-None-Match": '"something-else"'})
    assert (by_etag.status, by_etag.body) == (304, b"")
    assert (by_date.status, by_date.body) == (304, b"")
    assert other.status == 200 and other.body == b'{"title": "x"}\n'


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/feeds/%2e%2e/%2e%2e/secret.txt",
        "/feeds/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/escape.md",
        "/.manifest.json",
        "/",
        "/feeds",
        "/feeds/",
        "/missing.md",
    ],
)
def test_traversal_listings_and_dotfiles_refused(export_dir: Path, path: str) -> None:
    with serving(export_dir) as server:
        reply = server.get(path)
    assert reply.status in (403, 404)
    assert b"TOP-SECRET" not in reply.body
    assert b"all.rss" not in reply.body


@pytest.mark.parametrize(
    "relative",
    [
        "../secret.txt",
        "feeds/../../secret.txt",
        "/etc/passwd",
        "escape.md",
        ".manifest.json",
        "feeds",
        "",
        "a\x00b",
        "..\\secret.txt",
    ],
)
def test_resolve_export_path_refuses(export_dir: Path, relative: str) -> None:
    assert resolve_export_path(export_dir, relative) is None


def test_resolve_export_path_accepts_nested_files(export_dir: Path) -> None:
    assert (
        resolve_export_path(export_dir, "feeds/all.rss") == (export_dir / "feeds/all.rss").resolve()
    )


def test_healthz(export_dir: Path) -> None:
    with serving(export_dir) as server:
        reply = server.get("/healthz")
    assert (reply.status, reply.body) == (200, b"ok")


def test_readyz_ready_with_fresh_heartbeat(export_dir: Path) -> None:
    readiness = Readiness(
        database=lambda: None,
        heartbeat=lambda: NOW - timedelta(minutes=5),
        max_age=timedelta(minutes=30),
        clock=lambda: NOW,
    )
    with serving(export_dir, readiness=readiness) as server:
        reply = server.get("/readyz")
    assert reply.status == 200
    assert json.loads(reply.body) == {"status": "ready"}


def _broken_database() -> None:
    raise ConnectionError("database is locked")


@pytest.mark.parametrize(
    ("readiness", "reason"),
    [
        (Readiness(database=_broken_database), "database unreachable: database is locked"),
        (
            Readiness(
                database=lambda: None,
                heartbeat=lambda: NOW - timedelta(hours=3),
                max_age=timedelta(hours=1),
                clock=lambda: NOW,
            ),
            "last heartbeat 2026-03-01T09:00:00+00:00 is 3:00:00 old",
        ),
        (Readiness(database=lambda: None, heartbeat=lambda: None), "no heartbeat yet"),
    ],
)
def test_readyz_not_ready(export_dir: Path, readiness: Readiness, reason: str) -> None:
    with serving(export_dir, readiness=readiness) as server:
        reply = server.get("/readyz")
    assert reply.status == 503
    assert reply.content_type.startswith("application/json")
    body = json.loads(reply.body)
    assert body["status"] == "not ready"
    assert any(r.startswith(reason) for r in body["reasons"]), body


def test_readyz_pings_a_real_sqlite_store(export_dir: Path, tmp_path: Path) -> None:
    good = build_app(export_dir, f"sqlite:///{tmp_path / 'r.db'}", metrics.REGISTRY)
    with Server(good) as server:
        assert server.get("/readyz").status == 200
    (tmp_path / "blocker").write_text("a file, not a directory")
    bad = build_app(export_dir, f"sqlite:///{tmp_path / 'blocker' / 'r.db'}", metrics.REGISTRY)
    with Server(bad) as server:
        reply = server.get("/readyz")
    assert reply.status == 503 and b"database unreachable" in reply.body


def test_metrics_exposition_parses(export_dir: Path) -> None:
    metrics.record_fetch("Feeds.Example", "ok", 0.2)
    metrics.record_fetch("feeds.example", "not_modified", 0.05)
    metrics.record_records(new=3, updated=1)
    metrics.set_sources_by_state({"ok": 5, "erroring": 1})
    metrics.observe_job("crawl", 12.5, failed=False)
    metrics.observe_job("retention", 1.0, failed=True)
    metrics.observe_export(0.7)
    metrics.record_webhook("hooks.example", delivered=False)
    with serving(export_dir) as server:
        reply = server.get("/metrics")
    assert reply.status == 200 and reply.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    for name in (
        "aggregator_fetches",
        "aggregator_fetch_duration_seconds",
        "aggregator_records_new",
        "aggregator_records_updated",
        "aggregator_sources",
        "aggregator_job_duration_seconds",
        "aggregator_job_failures",
        "aggregator_export_duration_seconds",
        "aggregator_webhook_deliveries",
    ):
        assert name in families, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("aggregator_sources", (("state", "dead"),))] == 0
    assert samples[("aggregator_sources", (("state", "ok"),))] == 5
    assert samples[("aggregator_job_failures_total", (("job", "retention"),))] >= 1
    assert (
        samples[("aggregator_fetches_total", (("host", "feeds.example"), ("outcome", "ok")))] >= 1
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:9000", ("::1", 9000)),
        (":8081", ("127.0.0.1", 8081)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8080", "host:", "host:99999", "host:http"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_command_refuses_public_address_without_flag() -> None:
    import typer
    from typer.testing import CliRunner

    from aggregator.serve import serve_command

    app = typer.Typer()
    app.command()(serve_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["serve-command", "--http", "0.0.0.0:8080"])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output
