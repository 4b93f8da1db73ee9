"""HTTP fetching: the one client factory, conditional GET, politeness and the SSRF guard.

This is the only module that imports httpx/httpcore. One `Fetcher` owns one client:

    fetch(url) = [robots.txt check, pages only]
               → retry( host slot → global slot → GET → redirect? → next hop … → capped body )
               → FetchResult

Policy: the total deadline covers one attempt (all redirect hops and the body), not slot waits
or retry backoff. Connect errors, 5xx and 429 are retried; timeouts, TLS errors and other 4xx are
not. A robots.txt 4xx means allow all (RFC 9309); so does a 5xx or unreachable robots.txt, against
the RFC's "assume disallow", because we only fetch pages that the site's own feed links to. The
SSRF guard resolves names itself, refuses if ANY address is not public, and connects to the vetted
IP literal (no DNS rebinding window); every redirect hop connects through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpcore
import httpx
from protego import Protego

from aggregator import metrics
from aggregator.content_coding import deferrable
from aggregator.errors import (
    BlockedAddressError,
    BodyTooLargeError,
    FetchError,
    RobotsDisallowedError,
)
from aggregator.models import FetchResult
from aggregator.netio import AsyncioBackend, LazyTLS, OriginPools
from aggregator.settings import FetchSettings

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_HTTPX_LOG = logging.getLogger("httpx")  # the logger AsyncClient.send writes its line to
_ULA = ipaddress.IPv6Network("fc00::/7")
_ACCEPT = {
    "feed": "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8",
    "page": "text/html, application/xhtml+xml;q=0.9, */*;q=0.8",
}


def classify_address(address: str) -> str | None:
    """Why `address` (an IP literal) is unsafe to connect to, e.g. "loopback"; None if public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "IPv4-mapped IPv6"
    classes = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unique local", isinstance(ip, ipaddress.IPv6Address) and ip in _ULA),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-global", not ip.is_global),
    )
    return next((name for name, matches in classes if matches), None)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _BlockedError(Exception):
    """Raised inside the transport, which does not know the URL; fetch() maps it."""


class _RetryableError(Exception):
    """A retryable failure: the error to raise if attempts run out, and the server's wait."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class _GuardedBackend(AsyncioBackend):
    """Resolves the host, vets every address, then connects to a vetted IP literal.

    TLS still verifies and sends the hostname as SNI: httpcore passes the origin host to
    start_tls as server_hostname, independent of the address we connected to.
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first reachable vetted address of `host`."""
        addresses = await _resolve(host, port, timeout)
        for address in addresses:
            if reason := classify_address(address):
                raise _BlockedError(f"refusing to connect to {address} ({reason})")
        failure: Exception = httpcore.ConnectError(f"no address found for {host}")
        for address in addresses:
            try:
                return await super().connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure


async def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"DNS lookup of {host} failed: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _build_client(settings: FetchSettings) -> tuple[httpx.AsyncClient, httpx.AsyncHTTPTransport]:
    """The client, and its transport (`Fetcher._send_get` sends GETs through it directly)."""
    tls = LazyTLS(lambda: httpx.create_ssl_context(trust_env=False))
    transport = httpx.AsyncHTTPTransport(verify=tls.placeholder, trust_env=False)
    # httpx takes no network backend, so swap in pools built with ours: one per origin.
    backend = (AsyncioBackend if settings.allow_private_networks else _GuardedBackend)(tls)

    def origin_pool() -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            ssl_context=tls.placeholder,
            max_connections=settings.per_host_concurrency,
            max_keepalive_connections=settings.per_host_concurrency,
            keepalive_expiry=5.0,
            network_backend=backend,
        )

    transport._pool = OriginPools(origin_pool, keep=2 * settings.concurrency)  # type: ignore[assignment]
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate, br"},
        follow_redirects=False,
        trust_env=False,
    )
    return client, transport


class Fetcher:
    """One client factory: limits, timeouts, UA, SSRF guard, politeness, in one place."""

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._client, self._transport = _build_client(settings)
        self._timeouts = self._client.timeout.as_dict()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._robots: dict[str, Any] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._agent = settings.user_agent.split("/", 1)[0].strip() or "*"

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        kind: Literal["feed", "page"] = "feed",
        encoded: bool = False,
    ) -> FetchResult:
        """GET `url` politely; a 304 is a result with not_modified=True. Raises FetchError.

        With `encoded`, a gzip or deflate body stays compressed: `content_encoding` names
        it, and whoever uses the body decodes it (`content_coding.decode_content`, under
        the same cap), so a parse worker, not the crawling process, pays for it."""
        _check_scheme(url, url)
        if kind == "page" and self._settings.respect_robots:
            await self._check_robots(url)
        headers = {"Accept": _ACCEPT[kind]}
        if etag and _sendable(etag):
            headers["If-None-Match"] = etag
        if last_modified and _sendable(last_modified):
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        host = urlsplit(url).hostname or ""
        try:
            result = await self._fetch_with_retries(url, headers, encoded)
        except FetchError:
            metrics.record_fetch(host, "error", time.monotonic() - started)
            raise
        if result.not_modified and not {"If-None-Match", "If-Modified-Since"} & headers.keys():
            # nothing of ours to keep: "not modified" would leave the source without entries
            metrics.record_fetch(host, "error", time.monotonic() - started)
            raise FetchError(
                url, "HTTP 304 Not Modified to a request that was not conditional", 304
            )
        outcome = "not_modified" if result.not_modified else "ok"
        metrics.record_fetch(host, outcome, time.monotonic() - started)
        if result.not_modified:  # servers may omit validators on a 304: keep the ones we sent
            etag, last_modified = result.etag or etag, result.last_modified or last_modified
            result = dataclasses.replace(result, etag=etag, last_modified=last_modified)
        return dataclasses.replace(result, elapsed_seconds=time.monotonic() - started)

    @property
    def max_body_bytes(self) -> int:
        """The cap on a body's decoded size (`fetch.max_body_bytes`)."""
        return self._settings.max_body_bytes

    async def post_json(self, url: str, payload: object) -> int:
        """POST `payload` as JSON through the same guarded client; return the 2xx status.

        One attempt, no redirects (the caller retries). Raises FetchError on a network error
        or any other status (BlockedAddressError when the SSRF guard refuses the target).
        """
        _check_scheme(url, url)
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Accept": "*/*"}
        try:
            async with self._slot(url), asyncio.timeout(self._settings.total_timeout):
                request = self._client.build_request("POST", url, content=body, headers=headers)
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except TimeoutError as exc:
            total = self._settings.total_timeout
            raise FetchError(url, f"timed out after {total:g} s (total deadline)") from exc
        except _BlockedError as exc:
            raise BlockedAddressError(url, str(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            mapped = _map_httpx_error(url, exc, self._settings)
            raise (mapped.error if isinstance(mapped, _RetryableError) else mapped) from exc
        status = response.status_code
        if not 200 <= status < 300:
            wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            raise FetchError(url, f"HTTP {status} from webhook", status, retry_after=wait)
        return status

    async def _fetch_with_retries(
        self, url: str, headers: dict[str, str], encoded: bool = False
    ) -> FetchResult:
        attempts = self._settings.retries + 1
        for attempt in range(attempts):
            try:
                return await self._attempt(url, headers, encoded)
            except _RetryableError as retry:
                if attempt == attempts - 1:
                    raise retry.error from retry.__cause__
                delay = retry.retry_after
                if delay is None:
                    delay = self._settings.backoff_seconds * 2**attempt
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, url: str, headers: dict[str, str], encoded: bool) -> FetchResult:
        """One attempt: follow redirects by hand, every hop under the same total deadline."""
        chain = [url]
        permanent = True
        deadline: float | None = None
        while True:
            async with self._slot(chain[-1]):
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + self._settings.total_timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        hop = await self._exchange(url, chain[-1], headers, encoded)
                except TimeoutError as exc:
                    total = self._settings.total_timeout
                    raise FetchError(url, f"timed out after {total:g} s (total deadline)") from exc
            if isinstance(hop, FetchResult):
                return dataclasses.replace(hop, permanent_redirect=permanent and len(chain) > 1)
            permanent = permanent and hop[0] in _PERMANENT
            self._follow(url, chain, *hop)

    @contextlib.asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[None]:
        # Host slot first, so requests queued behind a busy host do not hold global slots.
        host = (urlsplit(url).hostname or "").lower()
        limit = self._settings.per_host_concurrency
        host_slot = self._host_slots.setdefault(host, asyncio.Semaphore(limit))
        async with host_slot, self._slots:
            yield

    async def _exchange(
        self, url: str, current: str, headers: dict[str, str], encoded: bool
    ) -> FetchResult | tuple[int, str]:
        """One GET: a final FetchResult, or (status, Location) for a redirect."""
        try:
            response = await self._send_get(current, headers)
            try:
                status = response.status_code
                if status in _REDIRECTS:
                    return status, response.headers.get("location", "")
                _check_status(url, response, self._settings.max_retry_after_seconds)
                content, coding = await self._read_body(url, response, encoded)
            finally:
                await response.aclose()
        except _BlockedError as exc:
            raise BlockedAddressError(url, str(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _map_httpx_error(url, exc, self._settings) from exc
        except OSError as exc:
            raise FetchError(url, f"network error: {exc}") from exc
        return _result(url, response, content, coding)

    async def _send_get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """GET `url` through the client's transport, as `AsyncClient.send` would (its
        headers, timeouts and cookie jar, its log line), but without its per-request layers
        (auth, redirect and event-hook machinery, a timer, a wrapped stream), none of which
        a fetch uses: about a sixth of the CPU a page's fetch cost."""
        cookies = self._client.cookies
        merged = httpx.Headers(self._client.headers)
        merged.update(headers)
        jar = cookies if cookies.jar else None
        timeouts = {"timeout": self._timeouts}
        request = httpx.Request("GET", url, headers=merged, cookies=jar, extensions=timeouts)
        response = await self._transport.handle_async_request(request)
        response.request = request
        if "set-cookie" in response.headers:
            cookies.extract_cookies(response)
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response

    async def _read_body(
        self, url: str, response: httpx.Response, encoded: bool
    ) -> tuple[bytes, str]:
        """The body, and the content coding it is still in ("" once decoded)."""
        if response.status_code == 304:
            return b"", ""
        coding = response.headers.get("content-encoding", "")
        if encoded and deferrable(coding):
            return await self._read_raw_capped(url, response), coding.strip().lower()
        return await self._read_capped(url, response), ""

    async def _read_raw_capped(self, url: str, response: httpx.Response) -> bytes:
        """The body as sent (still compressed), capped like a decoded one."""
        cap = self._settings.max_body_bytes
        return await _collect(url, response.aiter_raw(), cap, response.status_code)

    async def _read_capped(self, url: str, response: httpx.Response) -> bytes:
        cap = self._settings.max_body_bytes
        status = response.status_code
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            message = f"body of {int(declared)} bytes declared, over the {cap}-byte cap"
            raise BodyTooLargeError(url, message, status)
        # decoded bytes: a gzip bomb is capped too
        body = await _collect(url, response.aiter_bytes(), cap, status)
        if _compressed_stream_ended_early(response):
            raise FetchError(url, "compressed body ends early (truncated gzip/deflate stream)")
        return body

    def _follow(self, url: str, chain: list[str], status: int, location: str) -> None:
        if not location:
            raise FetchError(url, f"HTTP {status} redirect without a Location header", status)
        try:
            target = str(httpx.URL(chain[-1]).join(location))
        except httpx.InvalidURL as exc:
            raise FetchError(url, f"invalid redirect target {location!r}") from exc
        _check_scheme(url, target)
        if target in chain:
            raise FetchError(url, "redirect loop: " + " → ".join([*chain, target]))
        if len(chain) > self._settings.max_redirects:
            raise FetchError(url, f"too many redirects (more than {self._settings.max_redirects})")
        chain.append(target)

    async def _check_robots(self, url: str) -> None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        rules = self._robots[origin]
        if rules is not None and not rules.can_fetch(url, self._agent):
            raise RobotsDisallowedError(url, f"robots.txt of {origin} disallows {self._agent}")

    async def _load_robots(self, origin: str) -> Any:
        """Parsed rules, or None (allow all) on 4xx, 5xx or any failure: see module docstring."""
        try:
            result = await self._fetch_with_retries(
                f"{origin}/robots.txt", {"Accept": "text/plain"}
            )
        except FetchError:
            return None
        return Protego.parse(_robots_text(result.content))


ROBOTS_MAX_BYTES = 512 * 1024
"""What of a robots.txt is read: RFC 9309 asks for at least 500 KiB, as Google reads. A
15 MB file of rules took ~5 s to parse on the event loop and ~140 ms per page checked."""


def _robots_text(content: bytes) -> str:
    """The first `ROBOTS_MAX_BYTES` of a robots.txt, cut after its last whole line."""
    if len(content) > ROBOTS_MAX_BYTES:
        content = content[:ROBOTS_MAX_BYTES].rpartition(b"\n")[0]
    return content.decode("utf-8", errors="replace")


def _sendable(validator: str) -> bool:
    """Whether a stored ETag or Last-Modified can go back in a request header.

    A server may send bytes outside ASCII (httpx reads them as Latin-1), which httpx
    refuses to send: one such validator failed every later fetch of its feed. Without
    it, the request is unconditional, and an unchanged body is still recognised by its
    hash."""
    return validator.isascii() and validator.isprintable()


def _check_scheme(url: str, target: str) -> None:
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(url, f"refusing non-http(s) URL {target!r}")


def _check_status(url: str, response: httpx.Response, max_wait: float) -> None:
    """Pass on 2xx and 304; raise _RetryableError on 429/5xx; raise FetchError otherwise."""
    status = response.status_code
    if 200 <= status < 300 or status == 304:
        return
    reason = httpx.codes.get_reason_phrase(status)
    message = f"HTTP {status} {reason}".rstrip()
    if status != 429 and status < 500:
        raise FetchError(url, message, status)
    wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    if wait is not None and wait > max_wait:
        message = f"{message}; server asks to retry after {wait:g} s, over {max_wait:g} s"
        raise FetchError(url, message, status, retry_after=wait)
    raise _RetryableError(FetchError(url, message, status, retry_after=wait), wait)


async def _collect(url: str, chunks: AsyncIterator[bytes], cap: int, status: int) -> bytes:
    """The chunks joined; BodyTooLargeError as soon as they pass `cap` bytes."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > cap:
            raise BodyTooLargeError(url, f"body passed the {cap}-byte cap", status)
    return bytes(body)


def _compressed_stream_ended_early(response: httpx.Response) -> bool:
    """True when a gzip/deflate body stopped before its end marker (httpx does not check)."""
    decompressor = getattr(getattr(response, "_decoder", None), "decompressor", None)
    return getattr(decompressor, "eof", True) is False


def _result(
    url: str, response: httpx.Response, content: bytes, content_encoding: str = ""
) -> FetchResult:
    headers = {key.lower(): value for key, value in response.headers.items()}
    return FetchResult(
        url=url,
        final_url=str(response.url),
        status=response.status_code,
        content=content,
        headers=headers,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        not_modified=response.status_code == 304,
        content_encoding=content_encoding,
    )


def _map_httpx_error(url: str, exc: Exception, settings: FetchSettings) -> Exception:
    """An httpx exception as a FetchError; connect errors come wrapped in _RetryableError."""
    if isinstance(exc, httpx.ConnectTimeout):
        message = f"connect timed out after {settings.connect_timeout:g} s"
        return _RetryableError(FetchError(url, message))
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(url, f"timed out after {settings.read_timeout:g} s waiting for data")
    if isinstance(exc, httpx.ConnectError):
        if tls := next((c for c in _causes(exc) if isinstance(c, ssl.SSLError)), None):
            return FetchError(url, f"TLS error: {tls}")
        return _RetryableError(FetchError(url, _connect_message(exc)))
    if isinstance(exc, httpx.DecodingError):
        return FetchError(url, f"could not decode the compressed body: {exc}")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return FetchError(url, f"invalid URL: {exc}")
    detail = str(exc) or "connection closed or reset mid-response"  # ReadError("") on a RST
    return FetchError(url, f"network error: {detail} ({type(exc).__name__})")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        if isinstance(seen, BaseExceptionGroup):
            yield from seen.exceptions
        seen = seen.__cause__ or seen.__context__


def _connect_message(exc: httpx.ConnectError) -> str:
    causes = list(_causes(exc))
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return "connection refused"
    dns = next((cause for cause in causes if isinstance(cause, socket.gaierror)), None)
    if dns is not None:
        return f"DNS lookup failed: {dns.strerror or dns}"
    return f"connection failed: {exc or type(exc).__name__}"
