"""The daemon end to end (a subprocess against a loopback corpus), its jobs, claims and pruning."""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import feedparser
import pytest
import yaml
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from aggregator.cli import app
from aggregator.daemon import Daemon, DaemonSettings, JobContext, JobSpec
from aggregator.daemon_ops import prune_records, topic_cutoffs
from aggregator.daemon_status import read_heartbeat
from aggregator.export.files import ExportWriter, safe_filename
from aggregator.models import Image, Provenance, Provider, Record
from aggregator.pipeline import CrawlOptions, crawl
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store
from tests.loopback import REPO_ROOT, StaticWeb, free_port, generate_corpus, serve_corpus

FEEDS, ITEMS = 3, 3
FAST = DaemonSettings(
    crawl_tick=0.2,
    export_debounce=0.3,
    heartbeat_every=0.3,
    grace_period=5.0,
    retention_days=None,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StaticWeb]]:
    port = free_port("127.0.0.2")
    root = generate_corpus(
        tmp_path_factory.mktemp("corpus") / "web", feeds=FEEDS, items=ITEMS, port=port
    )
    with serve_corpus(root, port) as server:
        yield root, server


def config_data(tmp_path: Path, corpus_root: Path | None) -> dict[str, Any]:
    feeds = (corpus_root / "feeds.txt").read_text().split() if corpus_root else []
    return {
        "data_dir": str(tmp_path / "data"),
        "storage": {"url": f"sqlite:///{tmp_path / 'data' / 'agg.db'}"},
        "fetch": {"allow_private_networks": True, "retries": 0},
        "export": {"dir": str(tmp_path / "export")},
        # adaptive schedule squeezed into ~1 s so the daemon re-polls within the test
        "scheduler": {
            "min_interval_minutes": 0.01,
            "max_interval_hours": 0.0003,
            "jitter_fraction": 0,
        },
        "sources": [{"name": f"outlet {i}", "url": url} for i, url in enumerate(feeds)],
    }


def write_config(tmp_path: Path, corpus_root: Path | None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path, corpus_root)))
    return path


def start_daemon(config: Path, daemon: DaemonSettings = FAST) -> subprocess.Popen[str]:
    code = (
        "import sys; from pathlib import Path; "
        "from aggregator.daemon import DaemonSettings, run_process; "
        f"sys.exit(run_process(Path({str(config)!r}), DaemonSettings(**{daemon_kwargs(daemon)})))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def daemon_kwargs(daemon: DaemonSettings) -> dict[str, float | None]:
    names = ("crawl_tick", "export_debounce", "heartbeat_every")
    return {name: getattr(daemon, name) for name in (*names, "grace_period", "retention_days")}


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def feed_statuses(server: StaticWeb, host_paths: list[tuple[str, str]]) -> dict[str, list[int]]:
    statuses: dict[str, list[int]] = {f"{h}{p}": [] for h, p in host_paths}
    for host, path, status in list(server.requests):
        key = f"{host.split(':')[0]}{path}"
        if key in statuses:
            statuses[key].append(status)
    return statuses


def test_daemon_polls_again_with_304s_exports_and_stops_on_sigterm(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, server = corpus
    config = write_config(tmp_path, root)
    feeds = [url.split("/", 3) for url in (root / "feeds.txt").read_text().split()]
    keys = [(parts[2].split(":")[0], "/" + parts[3]) for parts in feeds]
    export_dir = tmp_path / "export"
    server.requests.clear()
    daemon = start_daemon(config)
    try:
        wait_for(lambda: all(len(s) >= 2 for s in feed_statuses(server, keys).values()))
        wait_for(lambda: len(list(export_dir.glob("*.md"))) == FEEDS * ITEMS)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=15)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, stderr
    for statuses in feed_statuses(server, keys).values():
        assert statuses[0] == 200
        assert set(statuses[1:]) == {304}
    assert not [p for p in export_dir.iterdir() if p.name.endswith(".tmp")]
    assert (export_dir / "records.jsonl").read_text().count("\n") == FEEDS * ITEMS
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        assert store.count_records() == FEEDS * ITEMS
        for index in range(FEEDS):
            state = store.get_source_state(f"outlet {index}")
            assert state is not None and state.next_check_at is not None
            assert state.last_fetch_at is not None
            assert state.next_check_at > state.last_fetch_at
            assert store.get_claim(f"outlet {index}") is None  # released


def test_second_daemon_is_refused_and_a_killed_one_leaves_no_stale_lock(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    data_dir = tmp_path / "data"
    first = start_daemon(config)
    try:
        wait_for(lambda: read_heartbeat(data_dir) is not None)
        second = start_daemon(config)
        _, stderr = second.communicate(timeout=20)
        assert second.returncode == 2
        assert f"another aggregator daemon (pid {first.pid}) owns {data_dir}; stop it" in stderr
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
        first.communicate()
    third = start_daemon(config)
    try:
        wait_for(lambda: getattr(read_heartbeat(data_dir), "pid", None) == third.pid)
    finally:
        third.send_signal(signal.SIGTERM)
        third.communicate(timeout=15)
    assert third.returncode == 0


def test_crawl_skips_a_source_claimed_by_another_owner_and_takes_an_expired_claim(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, server = corpus
    settings = parse_settings(config_data(tmp_path, root))
    options = CrawlOptions(fetch_pages=False)
    busy_url = settings.sources[0].url
    with Store(settings.storage.url) as store:
        assert store.claim_source("outlet 0", "someone else", 60)
        server.requests.clear()
        reports = asyncio.run(crawl(settings, store, options=options))
        assert (reports[0].source, reports[0].status) == ("outlet 0", "busy")
        assert not reports[0].failed
        assert [r.status for r in reports[1:]] == ["ok", "ok"]
        assert not [p for _, p, _ in server.requests if busy_url.endswith(p)]
        assert store.get_source_state("outlet 0") is None  # untouched
        store.release_source("outlet 0", "someone else")
        assert store.claim_source("outlet 0", "crashed", -1)  # a lease that has run out
        reports = asyncio.run(crawl(settings, store, options=options))
        assert reports[0].status == "ok" and reports[0].new == ITEMS
        assert store.get_claim("outlet 0") is None


def _record(n: int, published: datetime) -> Record:
    return Record(
        title=f"Story {n}",
        web_url=f"https://news.example/{n}",
        provider=Provider("News", "news.example"),
        published=published,
        images=(Image(f"https://news.example/{n}.jpg", 10, 10),),
        topics=("AI",),
        provenance=Provenance("src", "https://news.example/feed", f"g{n}"),
    )


def test_prune_removes_old_records_their_links_and_files(tmp_path: Path) -> None:
    settings = parse_settings(config_data(tmp_path, None))
    now = datetime.now(UTC).replace(microsecond=0)
    old, fresh = _record(1, now - timedelta(days=100)), _record(2, now - timedelta(days=1))
    with Store(settings.storage.url) as store:
        store.upsert_records([old, fresh])
        old_id = _id(store, old)
        fresh_id = _id(store, fresh)
        store.set_related(fresh_id, [old_id])
        store.set_related(old_id, [fresh_id])
        ExportWriter(Path(settings.export.dir)).write_markdown([old, fresh])
        assert prune_records(settings, store, now - timedelta(days=90)) == 1
        assert store.get_record(old.web_url) is None
        kept = store.get_record(fresh.web_url)
        assert kept is not None and kept.record.related == ()
    export_dir = Path(settings.export.dir)
    assert not (export_dir / safe_filename(old)).exists()
    assert (export_dir / safe_filename(fresh)).exists()
    db = sqlite3.connect(tmp_path / "data" / "agg.db")
    for table in ("images", "record_topics", "related"):
        query = f"SELECT count(*) FROM {table} WHERE record_id = ?"
        assert db.execute(query, (old_id,)).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM related").fetchone() == (0,)


def _id(store: Store, record: Record) -> int:
    stored = store.get_record(record.web_url)
    assert stored is not None
    return stored.id


def _settings(tmp_path: Path) -> Settings:
    return parse_settings(config_data(tmp_path, None))


def test_daemon_survives_failing_jobs_and_cancels_stuck_ones_after_grace(tmp_path: Path) -> None:
    runs: list[str] = []

    async def broken(_context: JobContext) -> None:
        runs.append("broken")
        raise RuntimeError("a bug")

    async def stuck(_context: JobContext) -> None:
        runs.append("stuck")
        await asyncio.sleep(3600)

    async def scenario() -> float:
        jobs = [JobSpec("broken", broken, 0.05), JobSpec("stuck", stuck, 0.05)]
        daemon = Daemon(_settings(tmp_path), replace(FAST, grace_period=0.3), jobs)
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        daemon.request_stop()
        await asyncio.wait_for(task, timeout=5)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    assert runs.count("broken") >= 3  # kept running after failing
    assert runs.count("stuck") == 1  # never overlapped itself
    assert 0.25 <= took < 3


def test_daemon_settings_come_from_a_scheduler_section_when_there_is_one(tmp_path: Path) -> None:
    class Section:
        def model_dump(self) -> dict[str, Any]:
            return {"crawl_tick": 5.0, "retention_days": None, "min_interval": "ignored"}

    class WithScheduler:
        scheduler = Section()

    assert DaemonSettings.from_settings(_settings(tmp_path)) == DaemonSettings()
    chosen = DaemonSettings.from_settings(cast(Settings, WithScheduler()))
    assert chosen == DaemonSettings(crawl_tick=5.0, retention_days=None)


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def test_run_http_serves_health_readiness_and_metrics_then_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    config, port = write_config(tmp_path, None), free_port("127.0.0.1")
    argv = ["aggregator", "run", "--config", str(config), "--http", f"127.0.0.1:{port}"]
    code = f"import sys; from aggregator.entry import main; sys.argv = {argv!r}; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: _get(port, "/healthz") == (200, b"ok"))
        wait_for(lambda: _get(port, "/readyz")[0] == 200)  # the first crawl tick succeeded
        status, body = _get(port, "/metrics")
        assert status == 200 and b'aggregator_job_duration_seconds_count{job="crawl"}' in body
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert _get(port, "/healthz") == (0, b"")


def test_run_http_refuses_a_public_address_without_public(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--http", "0.0.0.0:8080"])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output


def test_topic_retention_prunes_records_whose_topics_all_expired(tmp_path: Path) -> None:
    data = config_data(tmp_path, None)
    data["topics"] = [
        {"name": "AI", "keywords": ["ai"], "retention_days": 10},
        {"name": "Chips", "keywords": ["chips"], "retention_days": 30},
        {"name": "Science", "keywords": ["science"]},
    ]
    settings = parse_settings(data)
    now = datetime.now(UTC).replace(microsecond=0)
    aged = now - timedelta(days=20)
    cases = {1: ("AI",), 2: ("AI", "Science"), 3: ("AI", "Chips"), 4: ()}
    records = [replace(_record(n, aged), topics=topics) for n, topics in cases.items()]
    with Store(settings.storage.url) as store:
        store.upsert_records(records)
        removed = prune_records(
            settings, store, now - timedelta(days=90), topic_cutoffs(settings, now)
        )
        kept = {n for n in cases if store.get_record(f"https://news.example/{n}") is not None}
    assert (removed, kept) == (1, {2, 3, 4})  # only the record whose topics all expired


def test_a_new_item_reaches_the_exported_feeds_within_one_cycle(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    titles = ["First story about the harbour bridge"]

    def rss(_request: Request) -> Response:
        items = "".join(
            f"<item><title>{title}</title><link>{httpserver.url_for(f'/{i}')}</link>"
            f"<guid>{httpserver.url_for(f'/{i}')}</guid>"
            "<pubDate>Sun, 01 Mar 2026 10:00:00 GMT</pubDate>"
            "<description>A short summary of the story.</description></item>"
            for i, title in enumerate(titles)
        )
        body = f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
        return Response(body, content_type="application/rss+xml")

    httpserver.expect_request("/feed").respond_with_handler(rss)
    data = config_data(tmp_path, None)
    data["sources"] = [{"name": "live", "url": httpserver.url_for("/feed"), "pages": False}]
    data["quality"] = {"threshold": 0}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    feed_file = tmp_path / "export" / "feeds" / "all.rss"
    daemon = start_daemon(config)
    try:
        wait_for(lambda: feed_file.exists() and titles[0] in feed_file.read_text())
        titles.append("Second story arrives while the daemon runs")
        wait_for(lambda: titles[1] in feed_file.read_text(), timeout=15)
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=15)
    finally:
        daemon.kill()
    assert daemon.returncode == 0
    parsed = feedparser.parse(feed_file.read_bytes())
    assert parsed.bozo == 0
    assert {entry.title for entry in parsed.entries} == set(titles)


def test_the_daemon_keeps_running_beside_broken_servers(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = httpserver.url_for("")
    item = (
        f"<item><title>Healthy story about the harbour bridge</title><link>{base}ok</link>"
        "<pubDate>Sun, 01 Mar 2026 10:00:00 GMT</pubDate><description>Fine.</description></item>"
    )
    httpserver.expect_request("/feed").respond_with_data(
        f'<rss version="2.0"><channel><title>T</title>{item}</channel></rss>'
    )
    httpserver.expect_request("/broken").respond_with_data("oops", status=500)
    httpserver.expect_request("/html").respond_with_data(
        "<html><body>not a feed</body></html>", content_type="application/rss+xml"
    )
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/feed"
        data = config_data(tmp_path, None)
        data["fetch"].update({"read_timeout": 0.5, "total_timeout": 1.0})
        data["quality"] = {"threshold": 0}
        data["sources"] = [
            {"name": "healthy", "url": httpserver.url_for("/feed"), "pages": False},
            {"name": "silent", "url": silent_url, "pages": False},
            {"name": "broken", "url": httpserver.url_for("/broken"), "pages": False},
            {"name": "html", "url": httpserver.url_for("/html"), "pages": False},
        ]
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data))
        db = f"sqlite:///{tmp_path / 'data' / 'agg.db'}"
        daemon = start_daemon(config)
        try:
            wait_for(lambda: (tmp_path / "export" / "records.jsonl").exists())
            wait_for(lambda: all(errors_of(db, name) >= 1 for name in ("silent", "broken", "html")))
            polls = healthy_polls(httpserver)
            wait_for(lambda: healthy_polls(httpserver) >= polls + 2)  # still crawling after
            assert daemon.poll() is None
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=15)
        finally:
            daemon.kill()
    assert daemon.returncode == 0
    with Store(db) as store:
        assert store.count_records() == 1
        messages = {name: store.get_source_state(name) for name in ("silent", "broken", "html")}
    assert "timed out" in (messages["silent"].last_error or "")  # type: ignore[union-attr]
    assert "500" in (messages["broken"].last_error or "")  # type: ignore[union-attr]
    assert messages["html"].last_error  # type: ignore[union-attr]


def errors_of(db: str, name: str) -> int:
    """How many times in a row the source has failed (0 when unknown)."""
    with Store(db) as store:
        state = store.get_source_state(name)
    return state.error_count if state is not None else 0


def healthy_polls(server: HTTPServer) -> int:
    """How many times the healthy feed has been requested so far."""
    return sum(1 for request, _ in list(server.log) if request.path == "/feed")
