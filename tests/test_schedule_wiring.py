"""The adaptive schedule wired into the pipeline and the crawl job, on loopback and real SQLite.

The clock is injected, so days of schedule (redirect confirmation, dead sources) take no time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import metrics, pipeline
from aggregator.daemon import DaemonSettings, JobContext
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher
from aggregator.pipeline import CrawlOptions, crawl
from aggregator.settings import FetchSettings, Settings, parse_settings
from aggregator.store import SourceState, Store
from jobs import crawl as crawl_job

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NO_PAGES = CrawlOptions(fetch_pages=False)


def rss(now: datetime, items: int = 3, prefix: str = "story") -> str:
    entries = "".join(
        f"<item><title>{prefix} {n} about robots</title><link>https://news.example/{prefix}/{n}"
        f"</link><guid>{prefix}-{n}</guid><pubDate>{format_datetime(now - timedelta(hours=n))}"
        f"</pubDate><description>Robots did thing {n}.</description></item>"
        for n in range(1, items + 1)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://news.example/</link>{entries}</channel></rss>"
    )


def feed_reply(now: datetime = T0) -> Response:
    return Response(rss(now), content_type="application/rss+xml")


def settings_for(tmp_path: Path, sources: dict[str, str], **scheduler: Any) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "storage": {"url": f"sqlite:///{tmp_path / 'agg.db'}"},
            "fetch": {"allow_private_networks": True, "retries": 0},
            "export": {"dir": str(tmp_path / "export")},
            "scheduler": {"jitter_fraction": 0, **scheduler},
            "sources": [{"name": name, "url": url} for name, url in sources.items()],
        }
    )


def crawl_at(settings: Settings, store: Store, when: datetime, *names: str) -> None:
    options = CrawlOptions(source_names=names, fetch_pages=False)
    asyncio.run(crawl(settings, store, options=options, clock=lambda: when))


def state_of(store: Store, name: str) -> SourceState:
    state = store.get_source_state(name)
    assert state is not None
    return state


def serve(server: HTTPServer, path: str, replies: list[Response]) -> list[str]:
    """Answer `path` with `replies` in turn (the last one repeats); return the request log."""
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.path)
        return replies.pop(0) if len(replies) > 1 else replies[0]

    server.expect_request(path).respond_with_handler(handler)
    return seen


def test_503_with_retry_after_sets_the_next_check_then_200_recovers(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    busy = Response("busy", status=503, headers={"Retry-After": "7200"})
    serve(httpserver, "/feed", [busy, feed_reply()])
    settings = settings_for(tmp_path, {"S": httpserver.url_for("/feed")})
    with Store(settings.storage.url) as store:
        crawl_at(settings, store, T0)
        state = state_of(store, "S")
        assert (state.state, state.last_status, state.error_count) == ("erroring", 503, 1)
        assert state.next_check_at == T0 + timedelta(hours=2)  # Retry-After beats 5 min backoff
        crawl_at(settings, store, T0 + timedelta(hours=2))
        state = state_of(store, "S")
        assert (state.state, state.error_count, state.first_error_at) == ("ok", 0, None)
        assert state.next_check_at is not None and state.next_check_at > T0 + timedelta(hours=2)
        assert len(state.entry_dates) == 3


def test_final_retryable_status_carries_retry_after(httpserver: HTTPServer) -> None:
    serve(httpserver, "/slow", [Response("", status=429, headers={"Retry-After": "1"})])

    async def scenario() -> FetchError:
        async with Fetcher(FetchSettings(allow_private_networks=True, retries=0)) as fetcher:
            with pytest.raises(FetchError) as caught:
                await fetcher.fetch(httpserver.url_for("/slow"))
            return caught.value

    error = asyncio.run(scenario())
    assert (error.status, error.retry_after) == (429, 1.0)


def test_permanent_redirect_confirmed_after_the_period_moves_the_feed(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    new_url = httpserver.url_for("/new")
    old_log = serve(httpserver, "/old", [Response("", status=301, headers={"Location": new_url})])
    new_log = serve(httpserver, "/new", [feed_reply()])
    settings = settings_for(tmp_path, {"S": httpserver.url_for("/old")}, redirect_confirm_days=3)
    with Store(settings.storage.url) as store:
        crawl_at(settings, store, T0)
        pending = state_of(store, "S")
        assert (pending.redirect_url, pending.url_override) == (new_url, None)
        crawl_at(settings, store, T0 + timedelta(days=1))
        assert state_of(store, "S").url_override is None  # not held long enough yet
        crawl_at(settings, store, T0 + timedelta(days=3, hours=1))
        moved = state_of(store, "S")
        assert moved.url_override == new_url and moved.url == httpserver.url_for("/old")
        assert moved.redirect_url is None
        old_log.clear(), new_log.clear()
        crawl_at(settings, store, T0 + timedelta(days=4))
        assert (old_log, new_log) == ([], ["/new"])  # the next crawl uses the new URL


def test_410_retires_the_source_the_crawl_job_skips_it_and_a_named_fetch_revives_it(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    serve(httpserver, "/gone", [Response("", status=410), feed_reply()])
    settings = settings_for(tmp_path, {"S": httpserver.url_for("/gone")})
    with Store(settings.storage.url) as store:
        crawl_at(settings, store, T0)
        state = state_of(store, "S")
        assert (state.state, state.next_check_at) == ("retired", None)
        later = T0 + timedelta(days=365)
        assert crawl_job.due_sources(settings.sources, {"S": state}, later) == []
        crawl_at(settings, store, later, "S")  # `aggregator fetch --source S` may still try
        assert state_of(store, "S").state == "ok"


def test_a_source_failing_beyond_dead_after_is_dead_and_probed_weekly(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    serve(httpserver, "/broken", [Response("oops", status=500)])
    settings = settings_for(tmp_path, {"S": httpserver.url_for("/broken")}, dead_after_days=7)
    with Store(settings.storage.url) as store:
        crawl_at(settings, store, T0)
        assert state_of(store, "S").state == "erroring"
        crawl_at(settings, store, T0 + timedelta(days=8))
        dead = state_of(store, "S")
        assert (dead.state, dead.error_count, dead.first_error_at) == ("dead", 2, T0)
        assert dead.next_check_at == T0 + timedelta(days=15)
    assert metrics.SOURCES.labels(state="dead")._value.get() == 1


def test_crawl_job_defers_extra_sources_of_one_host_without_counting_errors(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    paths = [f"/f{n}" for n in range(3)]
    for path in paths:
        serve(httpserver, path, [feed_reply()])
    sources = {f"S{n}": httpserver.url_for(path) for n, path in enumerate(paths)}
    settings = settings_for(tmp_path, sources, per_host_per_tick=2)
    daemon = DaemonSettings(crawl_tick=30)
    with Store(settings.storage.url) as store:
        context = JobContext(settings, daemon, store, "test", asyncio.Event(), lambda: T0)
        asyncio.run(crawl_job.run(context))
        states = [state_of(store, name) for name in sources]
        assert [s.fetch_count for s in states] == [1, 1, 0]
        assert states[2].next_check_at == T0 + timedelta(seconds=30)
        assert states[2].error_count == 0
        assert states[0].next_check_at is not None and states[0].next_check_at > T0


def test_sources_in_flight_are_bounded_by_the_fetch_concurrency(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow linker must not let every fetched source pile up with its parsed batch."""
    sources = {}
    for n in range(20):
        path = f"/feed{n}.xml"
        reply = Response(rss(T0, prefix=f"s{n}"), content_type="application/rss+xml")
        httpserver.expect_request(path).respond_with_response(reply)
        sources[f"source {n}"] = httpserver.url_for(path)
    base = settings_for(tmp_path, sources)
    settings = base.model_copy(
        update={"fetch": base.fetch.model_copy(update={"concurrency": 1, "parse_workers": 0})}
    )
    limit = pipeline.SOURCES_IN_FLIGHT_PER_CONNECTION * 1
    in_flight = peak = 0
    original = pipeline._crawl_guarded

    async def counted(context: Any, source: Any, lease: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)  # a slow linker: every source would be waiting here
            return await original(context, source, lease)
        finally:
            in_flight -= 1

    monkeypatch.setattr(pipeline, "_crawl_guarded", counted)
    with Store(settings.storage.url) as store:
        reports = asyncio.run(crawl(settings, store, options=NO_PAGES, clock=lambda: T0))
        assert [report.status for report in reports] == ["ok"] * 20
        assert len(store.find_by_urls(f"https://news.example/s{n}/1" for n in range(20))) == 20
    assert peak == limit


def test_source_states_after_new_records_or_a_failure_are_saved_off_the_event_loop(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saving a source's state may wait for the database's write lock (the linker's):
    after new records, and after a failure, the save runs on the store thread, not on
    the thread of the event loop that every socket waits for. An unchanged feed's state,
    written while nothing else writes in a re-poll, is saved on the loop."""
    serve(httpserver, "/ok", [feed_reply()])
    serve(httpserver, "/gone", [Response("gone", status=500)])
    settings = settings_for(
        tmp_path, {"ok": httpserver.url_for("/ok"), "gone": httpserver.url_for("/gone")}
    )
    saved_on: list[tuple[str, bool]] = []
    original = Store.save_source_state

    def recording(self: Store, state: SourceState, **kwargs: Any) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        saved_on.append((state.name, on_loop))
        original(self, state, **kwargs)

    monkeypatch.setattr(Store, "save_source_state", recording)
    with Store(settings.storage.url) as store:
        crawl_at(settings, store, T0)
        crawl_at(settings, store, T0 + timedelta(days=1))  # the same body: not modified
        assert state_of(store, "ok").fetch_count == 2
        assert state_of(store, "gone").error_count == 2
    assert saved_on.count(("gone", False)) == 2  # both failures, off the loop
    assert [on_loop for name, on_loop in saved_on if name == "ok"] == [False, True]
