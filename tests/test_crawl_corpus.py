"""End to end: `aggregator fetch` on a generated corpus served by a real loopback web server."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.models import Record
from aggregator.normalize import amp_cache_url, make_excerpt
from aggregator.pipeline import WORKER_MODULES, CrawlOptions, crawl
from aggregator.settings import load_settings
from aggregator.store import Store, UpsertCounts
from aggregator.workpool import WorkPool
from tests.loopback import StaticWeb, free_port, generate_corpus, serve_corpus

FEEDS, ITEMS = 6, 5
T = TypeVar("T")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StaticWeb]]:
    port = free_port("127.0.0.2")
    root = generate_corpus(
        tmp_path_factory.mktemp("corpus") / "web", feeds=FEEDS, items=ITEMS, port=port
    )
    with serve_corpus(root, port) as server:
        yield root, server


def write_config(tmp_path: Path, corpus_root: Path, **fetch: Any) -> Path:
    """A config for the corpus in `tmp_path`; `fetch` adds to its fetch section."""
    feeds = (corpus_root / "feeds.txt").read_text().split()
    config = {
        "data_dir": str(tmp_path / "data"),
        "storage": {"url": f"sqlite:///{tmp_path / 'data' / 'agg.db'}"},
        "fetch": {"allow_private_networks": True, "respect_robots": True, "retries": 0, **fetch},
        "export": {"dir": str(tmp_path / "export")},
        "sources": [{"name": f"outlet {i}", "url": url} for i, url in enumerate(feeds)],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def truth(corpus_root: Path) -> list[dict[str, Any]]:
    lines = (corpus_root / "truth.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def page_meta(corpus_root: Path, url: str, prop: str) -> str:
    path = corpus_root / url.split("/", 3)[3]
    match = re.search(rf'<meta (?:property|name)="{prop}" content="([^"]*)"', path.read_text())
    assert match, f"{prop} missing in {path}"
    return html.unescape(match.group(1))


def test_fetch_builds_one_complete_record_per_article(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, _ = corpus
    config = write_config(tmp_path, root)
    result = CliRunner().invoke(app, ["fetch", "--config", str(config)])
    assert result.exit_code == 0, result.output
    articles = truth(root)
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        assert store.count_records() == len(articles)
        for article in articles:
            stored = store.get_record(article["url"])
            assert stored is not None, article["url"]
            record = stored.record
            assert record.title == article["title"]
            assert record.web_url == article["url"]
            assert record.amp_web_url == article["amp"]
            assert record.cdn_amp_web_url == amp_cache_url(article["amp"])
            assert record.published is not None
            assert record.published.strftime("%Y-%m-%dT%H:%M:%SZ") == article["published"]
            description = page_meta(root, article["url"], "og:description")
            assert record.excerpt == make_excerpt(description)
            assert record.provider.name == article["outlet"]
            assert record.provider.domain == article["url"].split("/")[2].split(":")[0]
            image = record.images[0]
            assert image.url == article["image"]
            assert (image.width, image.height) == (
                int(page_meta(root, article["url"], "og:image:width")),
                int(page_meta(root, article["url"], "og:image:height")),
            )
            assert record.heat >= 0, article["url"]  # refreshed after the crawl linked it
        assert store.queued_for_refresh() == {}
    exported = sorted((tmp_path / "export").glob("*.md"))
    assert len(exported) == len(articles)


def test_second_fetch_gets_only_304s_and_changes_nothing(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, server = corpus
    config = write_config(tmp_path, root)
    runner = CliRunner()
    assert runner.invoke(app, ["fetch", "--config", str(config)]).exit_code == 0
    db = tmp_path / "data" / "agg.db"
    export_dir = tmp_path / "export"
    before = {p.name: p.stat().st_mtime_ns for p in export_dir.iterdir()}
    server.requests.clear()
    second = runner.invoke(app, ["fetch", "--config", str(config)])
    assert second.exit_code == 0, second.output
    feed_statuses = [status for _, path, status in server.requests if path.endswith("feed.xml")]
    assert feed_statuses == [304] * FEEDS
    assert not [path for _, path, _ in server.requests if path.endswith(".html")]
    after = {p.name: p.stat().st_mtime_ns for p in export_dir.iterdir()}
    assert after == before
    with Store(f"sqlite:///{db}") as store:
        assert store.count_records() == FEEDS * ITEMS


def test_related_lists_after_a_crawl_are_clean(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, _ = corpus
    config = write_config(tmp_path, root)
    assert CliRunner().invoke(app, ["fetch", "--config", str(config)]).exit_code == 0
    linked = 0
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        for stored in store.iter_records():
            urls = [entry.web_url for entry in stored.record.related]
            assert stored.record.web_url not in urls
            assert len(urls) == len(set(urls))
            assert len(urls) <= 6
            pairs = [(e.provider.domain, e.title) for e in stored.record.related]
            assert len(pairs) == len(set(pairs))
            linked += bool(urls)
    assert linked > 0  # the corpus has multi-outlet stories, so some lists are filled


def test_retag_applies_a_new_topic_without_fetching(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, server = corpus
    config = write_config(tmp_path, root)
    runner = CliRunner()
    assert runner.invoke(app, ["fetch", "--config", str(config), "--no-pages"]).exit_code == 0
    data = yaml.safe_load(config.read_text())
    data["topics"] = [{"name": "Everything", "regex": [r"\w+"], "threshold": 1}]
    config.write_text(yaml.safe_dump(data))
    server.requests.clear()
    result = runner.invoke(app, ["retag", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert server.requests == []
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        assert all(s.record.topics == ("Everything",) for s in store.iter_records())


def _crawl(corpus_root: Path, workdir: Path, topics: list[dict[str, Any]]) -> dict[str, Any]:
    """Fetch the corpus (feeds only) into a fresh store under `workdir`; its config data."""
    workdir.mkdir()
    config = write_config(workdir, corpus_root)
    data = yaml.safe_load(config.read_text())
    data["topics"] = topics
    config.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["fetch", "--config", str(config), "--no-pages"])
    assert result.exit_code == 0, result.output
    return dict(data)


def _stored(workdir: Path) -> dict[str, Any]:
    """web_url → (topics, feed categories) of every record stored under `workdir`."""
    with Store(f"sqlite:///{workdir / 'data' / 'agg.db'}") as store:
        return {
            s.record.web_url: (s.record.topics, s.record.provenance.categories)
            for s in store.iter_records()
        }


def test_feeds_only_keeps_one_record_per_article_though_outlets_share_wire_leads(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, _ = corpus
    _crawl(root, tmp_path / "feeds", [])
    urls = {article["url"] for article in truth(root)}
    # an article whose lead another outlet also ran was merged into that outlet's record
    # (tests/test_dedupe.py pins the rule; this corpus has such pairs for some ports only)
    assert set(_stored(tmp_path / "feeds")) == urls


def test_retag_maps_stored_feed_categories_exactly_like_a_fresh_crawl(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, server = corpus
    keyword_topic = {"name": "Words", "regex": [r"\bthe\b"], "threshold": 1}
    _crawl(root, tmp_path / "old", [keyword_topic])
    before = _stored(tmp_path / "old")
    assert all(categories for _, categories in before.values())  # the corpus feeds tag entries
    counts = Counter(c for _, categories in before.values() for c in categories)
    label = next(c for c, n in counts.most_common() if n < len(before))
    tagged = {"name": "Tagged", "categories": [label.upper()]}  # matched case-insensitively

    config = tmp_path / "old" / "config.yaml"
    data = yaml.safe_load(config.read_text())
    data["topics"] = [keyword_topic, tagged]
    config.write_text(yaml.safe_dump(data))
    server.requests.clear()
    result = CliRunner().invoke(app, ["retag", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert server.requests == []
    retagged = _stored(tmp_path / "old")

    _crawl(root, tmp_path / "fresh", [keyword_topic, tagged])
    assert retagged == _stored(tmp_path / "fresh")
    with_label = {url for url, (_, categories) in before.items() if label in categories}
    assert {url for url, (topics, _) in retagged.items() if "Tagged" in topics} == with_label
    assert 0 < len(with_label) < len(before)


class ThreadNotingStore(Store):
    """A Store that notes which thread stored each batch of records."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.upsert_threads: list[str] = []

    def upsert_records(self, records: Sequence[Record]) -> UpsertCounts:
        self.upsert_threads.append(threading.current_thread().name)
        return super().upsert_records(records)


def test_records_are_stored_off_the_event_loop_in_one_thread(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, _ = corpus
    settings = load_settings(write_config(tmp_path, root))
    options = CrawlOptions(fetch_pages=False)
    with ThreadNotingStore(settings.storage.url) as store:
        reports = asyncio.run(crawl(settings, store, options=options))
        assert [r.status for r in reports] == ["ok"] * FEEDS
        assert len(store.upsert_threads) == FEEDS
        assert {name.split("_")[0] for name in store.upsert_threads} == {"store"}
        assert len(set(store.upsert_threads)) == 1  # one thread: upserts never overlap
        assert store.count_records() == FEEDS * ITEMS


class NotingPool(WorkPool):
    """A two-worker pool that notes whether its workers were starting before the first task."""

    def __init__(self) -> None:
        super().__init__(2, preload=WORKER_MODULES)
        self.starting_before_first_task: bool | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.starting_before_first_task is None:
            self.starting_before_first_task = self._starting is not None or self.started
        return await super().run(fn, *args)


def test_a_crawl_of_never_fetched_sources_starts_its_workers_at_once(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    """Sources without a stored state will be parsed: the workers start with the crawl, not
    after the first feed has arrived. A re-poll of known sources starts none."""
    root, _ = corpus
    path = write_config(tmp_path, root, parse_workers=2)  # else so small a crawl parses here
    settings = load_settings(path)
    options = CrawlOptions(fetch_pages=False)
    with Store(settings.storage.url) as store:
        with NotingPool() as cold:
            reports = asyncio.run(crawl(settings, store, options=options, pool=cold))
        assert [r.status for r in reports] == ["ok"] * FEEDS
        assert cold.starting_before_first_task is True
        with NotingPool() as again:
            reports = asyncio.run(crawl(settings, store, options=options, pool=again))
        assert [r.status for r in reports] == ["not modified"] * FEEDS
        assert again.starting_before_first_task is None
        assert again._starting is None and not again.started


def test_a_crawl_closes_its_own_workers_before_the_refresh(
    corpus: tuple[Path, StaticWeb], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end-of-crawl refresh needs no parse workers: a crawl's own pool is closed first,
    so its memory is not held beside the refresh's; a pool the caller owns stays open."""
    from aggregator import pipeline
    from aggregator.tracking import Tracker

    root, _ = corpus
    path = write_config(tmp_path, root, parse_workers=2)
    settings = load_settings(path)
    own = NotingPool()
    monkeypatch.setattr(pipeline, "crawl_pool", lambda _settings: own)
    seen: list[tuple[bool, bool]] = []
    watched = [own]

    class NotingTracker(Tracker):
        def flush(self, *, now: Any) -> int:
            seen.append((watched[0].started, watched[0]._closed))
            return super().flush(now=now)

    options = CrawlOptions(fetch_pages=False)
    with Store(settings.storage.url) as store:
        tracker = NotingTracker(settings, store)
        reports = asyncio.run(crawl(settings, store, options=options, tracker=tracker))
        assert [r.status for r in reports] == ["ok"] * FEEDS
        assert own.starting_before_first_task is True  # it did parse
        assert seen == [(False, True)]
    seen.clear()
    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other, NotingPool() as callers:
        watched[0] = callers
        tracker = NotingTracker(settings, other)
        reports = asyncio.run(
            crawl(settings, other, options=options, pool=callers, tracker=tracker)
        )
        assert [r.status for r in reports] == ["ok"] * FEEDS
        assert callers.starting_before_first_task is True
        assert seen == [(True, False)] and callers.started  # the daemon's pool lives on


def _entry_fetch(config: Path, scratch: Path, *options: str) -> subprocess.Popen[str]:
    """`aggregator fetch` through the console script, its temporary files under `scratch`."""
    entry = "import sys; from aggregator.entry import main; sys.argv[0] = 'aggregator'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", entry, "fetch", "--config", str(config), *options],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )


def test_the_console_script_leaves_no_temporary_directory_behind(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    """The console script leaves with `os._exit`, after the `atexit` handlers: the
    forkserver's socket directory (`pymp-*`) goes with the process, run after run."""
    root, _ = corpus
    path = write_config(tmp_path, root, parse_workers=2)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = _entry_fetch(path, scratch, "--no-pages")
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        assert store.count_records() == FEEDS * ITEMS
    assert sorted(p.name for p in scratch.iterdir()) == []


def test_a_cancelled_crawl_stops_every_source_crawl_and_loses_nothing(
    corpus: tuple[Path, StaticWeb], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C or SIGTERM cancels the crawl: the source crawls still running are cancelled
    and awaited before the fetcher, threads and linker close under them (they used to run
    on, and fail against the closed link thread as "bug while crawling"). A second crawl
    then completes what the first left."""
    root, _ = corpus
    settings = load_settings(write_config(tmp_path, root))
    seen: list[str] = []
    left: list[asyncio.Task[Any]] = []

    async def cancelled_after_first_report(store: Store) -> None:
        task = asyncio.current_task()
        assert task is not None

        def on_report(report: Any) -> None:
            seen.append(report.source)
            task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await crawl(settings, store, on_report=on_report)
        left.extend(t for t in asyncio.all_tasks() if t is not task)

    with Store(settings.storage.url) as store:
        asyncio.run(cancelled_after_first_report(store))
        # The cancel lands at the crawl's next suspension: a report that was already
        # waiting (two sources done in one loop iteration) is still handed over first.
        assert seen and left == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        reports = asyncio.run(crawl(settings, store))
        assert {r.status for r in reports} <= {"ok", "not modified"}
        assert store.count_records() == FEEDS * ITEMS
        assert all(stored.story_id for stored in store.iter_records())


def test_sigterm_stops_a_fetch_as_ctrl_c_does_and_the_next_fetch_completes_it(
    tmp_path: Path,
) -> None:
    """SIGTERM (a service manager, `timeout`, `docker stop`) mid-crawl: exit status 143,
    no traceback, no leaked semaphores, no temporary directory left; then a plain fetch
    stores and links every article once."""
    port = free_port("127.0.0.2")
    root = generate_corpus(tmp_path / "web", feeds=FEEDS, items=ITEMS, port=port)
    path = write_config(tmp_path, root, parse_workers=2)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with serve_corpus(root, port, page_delay=0.5) as server:
        fetch = _entry_fetch(path, scratch)
        try:
            deadline = time.monotonic() + 60
            while not any(p.endswith(".html") for _, p, _ in server.requests):
                assert time.monotonic() < deadline and fetch.poll() is None
                time.sleep(0.02)
            fetch.send_signal(signal.SIGTERM)
            _, stderr = fetch.communicate(timeout=60)
        finally:
            fetch.kill()
        assert fetch.returncode == 143, stderr
        assert stderr.strip() == "terminated"
        assert sorted(p.name for p in scratch.iterdir()) == []
        again = _entry_fetch(path, scratch)
        _, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        assert store.count_records() == FEEDS * ITEMS
        assert store.unlinked_ids(100) == []


def test_a_fetch_that_finds_nothing_new_still_exports_what_the_tree_lacks(
    corpus: tuple[Path, StaticWeb], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree is rewritten when the store moved since it was written, whatever the crawl
    brought: a run stopped after storing and before exporting leaves exactly that. Over a
    tree that is up to date, a re-poll still exports nothing."""
    from aggregator import operations
    from aggregator.export.files import load_manifest

    root, _ = corpus
    config = write_config(tmp_path, root)
    runner = CliRunner()
    assert runner.invoke(app, ["fetch", "--config", str(config)]).exit_code == 0
    exports: list[int] = []
    real_export = operations.export_configured

    def counted(settings: Any, store: Any) -> list[str]:
        exports.append(1)
        return real_export(settings, store)

    monkeypatch.setattr(operations, "export_configured", counted)
    with Store(f"sqlite:///{tmp_path / 'data' / 'agg.db'}") as store:
        stored = next(s for s in store.iter_records() if s.record.is_published)
        store.set_heat(stored.id, 97)  # stored, never exported: a stopped run's leftover
    assert runner.invoke(app, ["fetch", "--config", str(config)]).exit_code == 0
    assert exports == [1]
    name = load_manifest(tmp_path / "export")[stored.record.web_url]
    assert "\nheat: 97\n" in (tmp_path / "export" / name).read_text()
    assert runner.invoke(app, ["fetch", "--config", str(config)]).exit_code == 0
    assert exports == [1]  # the tree is up to date: nothing to export


def test_a_format_added_to_the_config_is_exported_by_the_next_fetch(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    """The store mark also holds a fingerprint of the export settings: a fetch after the
    feeds format (or a topic, a feed size, a base URL) was added exports, though every
    feed answers 304 (over an unchanged config it exports nothing: see the test above)."""
    root, _ = corpus
    path = write_config(tmp_path, root)
    config = yaml.safe_load(path.read_text())
    config["export"]["formats"] = ["md", "jsonl"]
    path.write_text(yaml.safe_dump(config))
    runner = CliRunner()
    assert runner.invoke(app, ["fetch", "--config", str(path)]).exit_code == 0
    feeds = tmp_path / "export" / "feeds"
    assert not feeds.exists()
    config["export"]["formats"] = ["md", "jsonl", "feeds"]
    path.write_text(yaml.safe_dump(config))
    assert runner.invoke(app, ["fetch", "--config", str(path)]).exit_code == 0
    assert (feeds / "all.rss").is_file()
