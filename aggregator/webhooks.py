"""Webhooks: each NEW published record of a topic is POSTed as JSON to the topic's webhook URLs.

    offer(records)   sync, never blocks: one delivery per (record, webhook URL of its topics)
                     on a bounded queue; a full queue drops the delivery (counted as failed)
    workers          POST through `Fetcher.post_json` (the one client factory, SSRF guard
                     unless fetch.allow_private_networks), up to `attempts` tries with
                     exponential backoff (a Retry-After is honoured, bounded); every attempt
                     → `metrics.record_webhook(host, delivered)`; 4xx and refused targets
                     are not retried
    close(timeout)   deliver what is queued within `timeout`, then cancel the rest

The payload is the seed shape (`record_to_public`), sealed like the exports. Deliveries run on
background tasks, so a slow or failing receiver never blocks a crawl. `webhook_session` gives
the pipeline the caller's dispatcher, or a local one for a one-shot `aggregator fetch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator import metrics
from aggregator.errors import BlockedAddressError, FetchError
from aggregator.export.fields import record_to_public
from aggregator.fetch import Fetcher
from aggregator.models import Record
from aggregator.settings import Settings

log = logging.getLogger(__name__)

_RETRY_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Queue bound, attempts and backoff of webhook deliveries (seconds)."""

    queue_size: int = 1000
    workers: int = 2
    attempts: int = 4
    backoff: float = 2.0
    max_backoff: float = 60.0
    close_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST to make: the webhook URL and the JSON payload."""

    url: str
    payload: dict[str, Any]


class WebhookDispatcher:
    """A bounded queue of deliveries and the background tasks that make them."""

    def __init__(self, settings: Settings, policy: WebhookPolicy = WebhookPolicy()) -> None:
        self.settings = settings
        self.policy = policy
        self.targets = {t.name: tuple(t.webhooks) for t in settings.topics if t.webhooks}
        self.delivered = 0
        self.failed = 0
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(policy.queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._fetcher: Fetcher | None = None
        self._seal: tuple[bytes, str] | None = None

    async def __aenter__(self) -> WebhookDispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(self.policy.close_timeout)

    async def start(self) -> None:
        """Open the HTTP client and start the workers (idempotent)."""
        if self._tasks:
            return
        self._fetcher = Fetcher(self.settings.fetch)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"webhooks-{n}")
            for n in range(max(1, self.policy.workers))
        ]

    async def close(self, timeout: float) -> None:
        """Let queued deliveries finish within `timeout` seconds, then stop the workers."""
        if not self._tasks:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("webhooks: %d delivery(ies) dropped at shutdown", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None

    def urls_for(self, record: Record) -> list[str]:
        """The webhook URLs of the record's topics, each once, in topic order."""
        urls = (url for topic in record.topics for url in self.targets.get(topic, ()))
        return list(dict.fromkeys(urls))

    def offer(self, records: Iterable[Record]) -> int:
        """Queue the deliveries of new published `records`; return how many were queued."""
        queued = 0
        for record in records:
            urls = self.urls_for(record) if record.is_published else []
            payload = self._payload(record) if urls else {}
            for url in urls:
                try:
                    self._queue.put_nowait(Delivery(url, payload))
                    queued += 1
                except asyncio.QueueFull:
                    self._give_up(url, "queue full")
        return queued

    def _payload(self, record: Record) -> dict[str, Any]:
        # cryptography loads with the first delivery, not with every crawl
        from aggregator.export.seal import instance_id, load_or_create_key, seal_record

        if self._seal is None:
            data_dir = Path(self.settings.data_dir)
            self._seal = (load_or_create_key(data_dir), instance_id(data_dir))
        key, instance = self._seal
        return record_to_public(replace(record, secured=seal_record(record, key, instance)))

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self.deliver(delivery)
            except Exception:  # a bug: keep the worker alive
                log.exception("bug while delivering a webhook to %s", delivery.url)
            finally:
                self._queue.task_done()

    async def deliver(self, delivery: Delivery) -> bool:
        """POST one delivery with bounded retries; True when the receiver accepted it."""
        assert self._fetcher is not None, "start() first"
        host = urlsplit(delivery.url).hostname or ""
        last = self.policy.attempts - 1
        for attempt in range(self.policy.attempts):
            try:
                await self._fetcher.post_json(delivery.url, delivery.payload)
            except FetchError as exc:
                metrics.record_webhook(host, False)
                if attempt == last or not _retryable(exc):
                    self._give_up(delivery.url, str(exc), count=False)
                    return False
                await asyncio.sleep(self._delay(attempt, exc.retry_after))
                continue
            metrics.record_webhook(host, True)
            self.delivered += 1
            return True
        return False

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        wanted = retry_after if retry_after is not None else self.policy.backoff * 2**attempt
        return min(self.policy.max_backoff, max(0.0, wanted))

    def _give_up(self, url: str, why: str, *, count: bool = True) -> None:
        if count:
            metrics.record_webhook(urlsplit(url).hostname or "", False)
        self.failed += 1
        log.warning("webhook %s: gave up: %s", url, why)


def _retryable(exc: FetchError) -> bool:
    if isinstance(exc, BlockedAddressError):
        return False
    status = exc.status
    return status is None or status >= 500 or status in _RETRY_4XX


@contextlib.asynccontextmanager
async def webhook_session(
    settings: Settings, given: WebhookDispatcher | None
) -> AsyncIterator[WebhookDispatcher | None]:
    """The caller's dispatcher; else a local one (drained on exit) when a topic has webhooks."""
    if given is not None or not any(topic.webhooks for topic in settings.topics):
        yield given
        return
    async with WebhookDispatcher(settings) as local:
        yield local
