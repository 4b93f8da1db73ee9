"""Topic webhooks on real loopback receivers: delivery, retries then give-up, the SSRF guard,
and the pipeline posting only NEW published records."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import metrics
from aggregator.export.fields import PUBLIC_KEYS
from aggregator.models import Provenance, Provider, Record
from aggregator.pipeline import CrawlOptions, crawl
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store
from aggregator.webhooks import WebhookDispatcher, WebhookPolicy
from tests.test_schedule_wiring import T0, rss

FAST = WebhookPolicy(attempts=3, backoff=0.01, close_timeout=10)


def settings_for(tmp_path: Path, hook: str, *, private: bool = True, **extra: Any) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "storage": {"url": f"sqlite:///{tmp_path / 'agg.db'}"},
            "fetch": {"allow_private_networks": private, "retries": 0},
            "quality": {"threshold": 0},
            "topics": [{"name": "Robots", "keywords": ["robots"], "webhooks": [hook]}],
            **extra,
        }
    )


def record(n: int, *, published: bool = True) -> Record:
    return Record(
        title=f"Robots {n}",
        web_url=f"https://news.example/{n}",
        provider=Provider("News", "news.example"),
        published=datetime(2026, 3, 1, tzinfo=UTC),
        is_published=published,
        topics=("Robots",),
        provenance=Provenance("src", "https://news.example/feed", f"g{n}"),
    )


def receiver(server: HTTPServer, status: int = 204) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def handler(request: Request) -> Response:
        bodies.append(json.loads(request.get_data()))
        return Response("", status=status)

    server.expect_request("/hook", method="POST").respond_with_handler(handler)
    return bodies


def dispatch(settings: Settings, records: list[Record]) -> WebhookDispatcher:
    async def scenario() -> WebhookDispatcher:
        async with WebhookDispatcher(settings, FAST) as dispatcher:
            dispatcher.offer(records)
        return dispatcher

    return asyncio.run(scenario())


def count(host: str, outcome: str) -> float:
    value: float = metrics.WEBHOOKS.labels(host=host, outcome=outcome)._value.get()
    return value


def test_new_published_records_are_posted_sealed_in_the_seed_shape(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    bodies = receiver(httpserver)
    before = count("localhost", "delivered")
    dispatcher = dispatch(
        settings_for(tmp_path, httpserver.url_for("/hook")),
        [record(1), record(2, published=False)],
    )
    assert (dispatcher.delivered, dispatcher.failed) == (1, 0)
    assert len(bodies) == 1 and tuple(bodies[0]) == PUBLIC_KEYS
    assert bodies[0]["webUrl"] == "https://news.example/1" and bodies[0]["secured"]
    assert count("localhost", "delivered") == before + 1


def test_a_failing_receiver_is_retried_then_given_up(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    bodies = receiver(httpserver, status=500)
    before = count("localhost", "failed")
    dispatcher = dispatch(settings_for(tmp_path, httpserver.url_for("/hook")), [record(1)])
    assert len(bodies) == FAST.attempts
    assert (dispatcher.delivered, dispatcher.failed) == (0, 1)
    assert count("localhost", "failed") == before + FAST.attempts


def test_the_ssrf_guard_refuses_a_loopback_webhook_without_retrying(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    bodies = receiver(httpserver)
    settings = settings_for(tmp_path, httpserver.url_for("/hook"), private=False)
    dispatcher = dispatch(settings, [record(1)])
    assert bodies == [] and (dispatcher.delivered, dispatcher.failed) == (0, 1)


def test_the_pipeline_posts_each_new_published_record_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    bodies = receiver(httpserver)
    feeds = [rss(T0, items=2), rss(T0, items=2), rss(T0, items=3)]

    def feed(_request: Request) -> Response:
        return Response(feeds.pop(0), content_type="application/rss+xml")

    httpserver.expect_request("/feed").respond_with_handler(feed)
    source = {"name": "S", "url": httpserver.url_for("/feed")}
    settings = settings_for(tmp_path, httpserver.url_for("/hook"), sources=[source])
    options = CrawlOptions(fetch_pages=False)
    with Store(settings.storage.url) as store:
        for _ in range(3):
            asyncio.run(crawl(settings, store, options=options, clock=lambda: T0))
    assert sorted(body["webUrl"] for body in bodies) == [
        f"https://news.example/story/{n}" for n in (1, 2, 3)
    ]
    assert all("Robots" in body["topics"] and body["published"] for body in bodies)
