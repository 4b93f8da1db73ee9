"""Tests for aggregator.fetch against real loopback servers (no mocks of httpx)."""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
import re
import ssl
import sys
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator.content_coding import decode_content
from aggregator.errors import (
    BlockedAddressError,
    BodyTooLargeError,
    FetchError,
    RobotsDisallowedError,
)
from aggregator.fetch import Fetcher, classify_address, parse_retry_after
from aggregator.models import FetchResult
from aggregator.settings import FetchSettings
from tests.tlscert import write_certificate

UA = "aggregator/0.1 (+https://example.invalid)"


def make_settings(**overrides: Any) -> FetchSettings:
    """Loopback-friendly settings with short timeouts and instant backoff."""
    values: dict[str, Any] = {
        "user_agent": UA,
        "allow_private_networks": True,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "total_timeout": 3.0,
        "retries": 2,
        "backoff_seconds": 0.0,
    }
    values.update(overrides)
    return FetchSettings(**values)


def fetch(url: str, settings: FetchSettings | None = None, **kwargs: Any) -> FetchResult:
    """Run one fetch with a fresh Fetcher."""

    async def go() -> FetchResult:
        async with Fetcher(settings or make_settings()) as fetcher:
            return await fetcher.fetch(url, **kwargs)

    return asyncio.run(go())


def hits(server: HTTPServer, path: str) -> int:
    """How many requests the server saw for `path`."""
    return sum(1 for request, _ in server.log if request.path == path)


# --- conditional GET, decoding, headers -------------------------------------------------------


def test_etag_then_conditional_get_returns_not_modified(httpserver: HTTPServer) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    httpserver.expect_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304
    )
    httpserver.expect_request("/feed").respond_with_data(
        "<rss/>", headers={"ETag": '"v1"', "Last-Modified": lm}, content_type="application/xml"
    )
    url = httpserver.url_for("/feed")
    first = fetch(url)
    assert (first.status, first.content, first.etag, first.last_modified) == (
        200,
        b"<rss/>",
        '"v1"',
        lm,
    )
    assert not first.not_modified
    assert first.headers["content-type"] == "application/xml"
    second = fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.status == 304 and second.content == b""
    assert second.etag == '"v1"' and second.last_modified == lm
    sent = httpserver.log[-1][0].headers
    assert sent["If-Modified-Since"] == lm


def test_a_304_to_a_request_that_was_not_conditional_is_an_error(httpserver: HTTPServer) -> None:
    # "Not modified" since nothing: a source that never had a body would stay without entries,
    # reported as fine, poll after poll.
    httpserver.expect_request("/feed").respond_with_data("", status=304)
    with pytest.raises(FetchError, match="304 Not Modified to a request that was not conditional"):
        fetch(httpserver.url_for("/feed"))
    assert fetch(httpserver.url_for("/feed"), etag='"v1"').not_modified


def test_sends_user_agent_and_accept_encoding(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")
    fetch(httpserver.url_for("/"))
    sent = httpserver.log[0][0].headers
    assert sent["User-Agent"] == UA
    assert sent["Accept-Encoding"] == "gzip, deflate, br"


def test_each_header_is_sent_once_with_the_kind_of_fetch_s_accept(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")
    fetch(httpserver.url_for("/"), kind="page")
    sent = next(request.headers for request, _ in httpserver.log if request.path == "/")
    assert sent.getlist("Accept") == ["text/html, application/xhtml+xml;q=0.9, */*;q=0.8"]
    assert len(sent.getlist("User-Agent")) == 1


def test_cookies_set_by_a_redirect_go_with_the_next_hop_and_later_fetches(
    httpserver: HTTPServer,
) -> None:
    """As httpx's client keeps them: a cookie wall that sets a cookie and redirects to the
    article gets it back on the next hop, and on later fetches from the same host."""
    headers = {"Location": "/article", "Set-Cookie": "consent=yes; Path=/"}
    httpserver.expect_request("/wall").respond_with_data("", status=302, headers=headers)
    httpserver.expect_request("/article").respond_with_data("article")
    httpserver.expect_request("/next").respond_with_data("next")

    async def go() -> tuple[FetchResult, FetchResult]:
        async with Fetcher(make_settings()) as fetcher:
            first = await fetcher.fetch(httpserver.url_for("/wall"))
            return first, await fetcher.fetch(httpserver.url_for("/next"))

    first, later = asyncio.run(go())
    assert (first.content, later.content) == (b"article", b"next")
    cookies = {request.path: request.headers.get("Cookie") for request, _ in httpserver.log}
    assert cookies == {"/wall": None, "/article": "consent=yes", "/next": "consent=yes"}


def test_httpx_request_log_line_is_kept(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/").respond_with_data("ok")
    with caplog.at_level("INFO", logger="httpx"):
        fetch(httpserver.url_for("/"))
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 1
    assert re.fullmatch(
        rf'HTTP Request: GET {httpserver.url_for("/")} "HTTP/1\.[01] 200 OK"', lines[0]
    )


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)],
)
def test_compressed_body_is_decoded(
    httpserver: HTTPServer, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = b"<rss>" + b"news " * 2000 + b"</rss>"
    httpserver.expect_request("/").respond_with_data(
        compress(body), headers={"Content-Encoding": encoding}
    )
    result = fetch(httpserver.url_for("/"))
    assert result.content == body


@pytest.mark.parametrize(
    ("encoding", "compress", "kept"),
    [
        # mtime=0: gzip stamps the current second, and the test compresses the body again
        ("gzip", functools.partial(gzip.compress, mtime=0), "gzip"),
        ("deflate", zlib.compress, "deflate"),
        ("br", brotli.compress, ""),  # decoded at once: only gzip and deflate wait
    ],
)
def test_an_encoded_fetch_leaves_gzip_and_deflate_for_the_caller(
    httpserver: HTTPServer, encoding: str, compress: Callable[[bytes], bytes], kept: str
) -> None:
    body = b"<html>" + b"news " * 2000 + b"</html>"
    httpserver.expect_request("/").respond_with_data(
        compress(body), headers={"Content-Encoding": encoding}
    )
    result = fetch(httpserver.url_for("/"), kind="page", encoded=True)
    assert result.content_encoding == kept
    assert result.content == (compress(body) if kept else body)
    assert decode_content(result.url, result.content, result.content_encoding, 10**6) == body


def test_an_encoded_fetch_caps_the_compressed_body(httpserver: HTTPServer) -> None:
    noise = os.urandom(300_000)  # incompressible: the gzip is as large as the body
    httpserver.expect_request("/").respond_with_data(
        gzip.compress(noise), headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(BodyTooLargeError):
        fetch(httpserver.url_for("/"), make_settings(max_body_bytes=100_000), encoded=True)


def test_rejects_non_http_scheme() -> None:
    with pytest.raises(FetchError, match="non-http"):
        fetch("file:///etc/passwd")


# --- redirects --------------------------------------------------------------------------------


def redirect(server: HTTPServer, path: str, target: str, status: int) -> None:
    """Make `path` redirect to `target` with `status`."""
    server.expect_request(path).respond_with_data("", status=status, headers={"Location": target})


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [((301, 308), True), ((301, 302), False), ((307, 308), False)],
)
def test_redirect_chain(httpserver: HTTPServer, statuses: tuple[int, int], permanent: bool) -> None:
    redirect(httpserver, "/a", "/b", statuses[0])
    redirect(httpserver, "/b", httpserver.url_for("/c"), statuses[1])
    httpserver.expect_request("/c").respond_with_data("final")
    result = fetch(httpserver.url_for("/a"))
    assert result.url == httpserver.url_for("/a")
    assert result.final_url == httpserver.url_for("/c")
    assert result.content == b"final"
    assert result.permanent_redirect is permanent


def test_no_redirect_is_not_permanent(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")
    assert not fetch(httpserver.url_for("/")).permanent_redirect


def test_redirect_loop_is_an_error(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/l1", "/l2", 302)
    redirect(httpserver, "/l2", "/l1", 302)
    with pytest.raises(FetchError, match="redirect loop"):
        fetch(httpserver.url_for("/l1"))


def test_too_many_redirects_is_an_error(httpserver: HTTPServer) -> None:
    for hop in range(4):
        redirect(httpserver, f"/r{hop}", f"/r{hop + 1}", 301)
    httpserver.expect_request("/r4").respond_with_data("too far")
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
        fetch(httpserver.url_for("/r0"), make_settings(max_redirects=3))
    assert hits(httpserver, "/r4") == 0


def test_redirect_to_other_scheme_is_refused(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/", "file:///etc/passwd", 302)
    with pytest.raises(FetchError, match="non-http"):
        fetch(httpserver.url_for("/"))


# --- body cap ---------------------------------------------------------------------------------


def test_declared_oversize_body_is_rejected_early(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data(b"x" * 2000)
    with pytest.raises(BodyTooLargeError, match="2000 bytes declared") as info:
        fetch(httpserver.url_for("/"), make_settings(max_body_bytes=1000))
    assert info.value.status == 200


def test_undeclared_oversize_body_is_capped_while_streaming(httpserver: HTTPServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"y" * 100

    httpserver.expect_request("/").respond_with_response(Response(chunks()))
    with pytest.raises(BodyTooLargeError, match="passed the 1000-byte cap"):
        fetch(httpserver.url_for("/"), make_settings(max_body_bytes=1000))


def test_body_at_the_cap_is_accepted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data(b"z" * 1000)
    assert len(fetch(httpserver.url_for("/"), make_settings(max_body_bytes=1000)).content) == 1000


def test_gzip_bomb_is_capped_on_decoded_size(httpserver: HTTPServer) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    httpserver.expect_request("/").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(BodyTooLargeError, match="passed the"):
        fetch(httpserver.url_for("/"), make_settings(max_body_bytes=1024 * 1024))


def test_a_validator_outside_ascii_is_not_sent_back_and_breaks_nothing() -> None:
    """A server's ETag and Last-Modified of Latin-1 bytes: httpx reads them, then refuses
    to send them; the next fetch must still work, unconditionally."""
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n"
            b'ETag: "caf\xe9\xff"\r\nLast-Modified: Wed, 01 Jan 2025 00:00:00 GMT\xe9\r\n\r\n<rss/>'
        )
        await writer.drain()
        writer.close()

    async def go() -> tuple[FetchResult, FetchResult]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        try:
            async with Fetcher(make_settings()) as fetcher:
                first = await fetcher.fetch(url)
                validators = {"etag": first.etag, "last_modified": first.last_modified}
                return first, await fetcher.fetch(url, **validators)
        finally:
            server.close()

    first, second = asyncio.run(go())
    assert first.etag == '"caf\xe9\xff"'
    assert (second.status, second.content) == (200, b"<rss/>")
    assert b"If-None-Match" not in requests[1] and b"If-Modified-Since" not in requests[1]


# --- timeouts (raw asyncio servers in the test's own loop) ------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def fetch_from_raw_server(handler: Handler, settings: FetchSettings) -> FetchResult:
    """Serve `handler` on a loopback port and fetch / from it."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch(f"http://127.0.0.1:{port}/")
    finally:
        server.close()


async def hang_before_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(30)


async def drip_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("handler", [hang_before_headers, drip_body])
def test_total_deadline_stops_slow_servers(handler: Handler) -> None:
    settings = make_settings(read_timeout=10.0, total_timeout=1.0)
    with pytest.raises(FetchError, match=r"timed out after 1 s \(total deadline\)"):
        asyncio.run(fetch_from_raw_server(handler, settings))


def test_read_timeout_is_reported() -> None:
    settings = make_settings(read_timeout=0.5, total_timeout=10.0)
    with pytest.raises(FetchError, match=r"timed out after 0.5 s waiting for data"):
        asyncio.run(fetch_from_raw_server(hang_before_headers, settings))


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a throwaway self-signed certificate for 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*write_certificate(directory))
    return context


def test_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    context = self_signed_context(tmp_path)
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(100))
        writer.close()

    async def go() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            async with Fetcher(make_settings()) as fetcher:
                await fetcher.fetch(f"https://127.0.0.1:{port}/")
        finally:
            server.close()

    with pytest.raises(FetchError, match=r"TLS error: .*CERTIFICATE_VERIFY_FAILED") as info:
        asyncio.run(go())
    assert info.value.status is None


# --- retries ----------------------------------------------------------------------------------


def test_503_then_200_succeeds_after_retry(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/").respond_with_data("busy", status=503)
    httpserver.expect_request("/").respond_with_data("ok")
    result = fetch(httpserver.url_for("/"))
    assert result.content == b"ok"
    assert hits(httpserver, "/") == 2


def test_persistent_500_fails_after_all_attempts(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("down", status=500)
    with pytest.raises(FetchError, match="HTTP 500 Internal Server Error") as info:
        fetch(httpserver.url_for("/"), make_settings(retries=2))
    assert info.value.status == 500
    assert hits(httpserver, "/") == 3


def test_429_retry_after_is_honoured(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_request("/").respond_with_data("ok")
    result = fetch(httpserver.url_for("/"))
    assert result.content == b"ok"
    assert hits(httpserver, "/") == 2
    assert result.elapsed_seconds >= 1.0  # backoff is 0, so only Retry-After explains the wait


def test_retry_after_too_long_fails_now(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data(
        "later", status=429, headers={"Retry-After": "3600"}
    )
    with pytest.raises(FetchError, match="retry after 3600 s") as info:
        fetch(httpserver.url_for("/"), make_settings(max_retry_after_seconds=5))
    assert info.value.status == 429
    assert hits(httpserver, "/") == 1


@pytest.mark.parametrize("status", [404, 410, 403])
def test_client_errors_are_not_retried(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/").respond_with_data("no", status=status)
    with pytest.raises(FetchError, match=f"HTTP {status} ") as info:
        fetch(httpserver.url_for("/"))
    assert info.value.status == status
    assert hits(httpserver, "/") == 1


def test_connection_refused_is_reported(httpserver: HTTPServer) -> None:
    url = httpserver.url_for("/")
    httpserver.stop()
    with pytest.raises(FetchError, match="connection refused") as info:
        fetch(url)
    assert info.value.status is None
    httpserver.start()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (format_datetime(datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        (format_datetime(datetime(2024, 12, 31, tzinfo=UTC), usegmt=True), 0.0),
        ("soon", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, datetime(2025, 1, 1, tzinfo=UTC)) == expected


# --- robots.txt -------------------------------------------------------------------------------


def fetch_many(urls: list[tuple[str, str]], settings: FetchSettings) -> list[object]:
    """Fetch (url, kind) pairs concurrently with one Fetcher; results or exceptions."""

    async def go() -> list[object]:
        async with Fetcher(settings) as fetcher:
            calls = [fetcher.fetch(url, kind=kind) for url, kind in urls]  # type: ignore[arg-type]
            return list(await asyncio.gather(*calls, return_exceptions=True))

    return asyncio.run(go())


def test_robots_disallow_blocks_pages_but_not_feeds(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: otherbot\nDisallow: /\n\nUser-agent: aggregator\nDisallow: /private\n"
    )
    httpserver.expect_request("/private/feed.xml").respond_with_data("<rss/>")
    httpserver.expect_request("/private/page").respond_with_data("<html/>")
    httpserver.expect_request("/public/page").respond_with_data("<html/>")
    results = fetch_many(
        [
            (httpserver.url_for("/private/page"), "page"),
            (httpserver.url_for("/public/page"), "page"),
            (httpserver.url_for("/private/feed.xml"), "feed"),
        ],
        make_settings(),
    )
    assert isinstance(results[0], RobotsDisallowedError)
    assert isinstance(results[1], FetchResult) and results[1].content == b"<html/>"
    assert isinstance(results[2], FetchResult) and results[2].content == b"<rss/>"
    assert hits(httpserver, "/robots.txt") == 1
    assert hits(httpserver, "/private/page") == 0


def test_robots_ignored_when_not_respected(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /\n")
    httpserver.expect_request("/page").respond_with_data("<html/>")
    settings = make_settings(respect_robots=False)
    assert fetch(httpserver.url_for("/page"), settings, kind="page").content == b"<html/>"
    assert hits(httpserver, "/robots.txt") == 0


def test_only_the_first_512_kib_of_a_robots_txt_are_read(httpserver: HTTPServer) -> None:
    # 15 MB of rules took ~5 s to parse on the event loop and ~140 ms a page to check.
    padding = "".join(f"Disallow: /padding/{n}/\n" for n in range(30_000))  # ~700 KiB
    rules = f"User-agent: *\nDisallow: /early\n{padding}Disallow: /late\n"
    assert len(rules.encode()) > 512 * 1024
    httpserver.expect_request("/robots.txt").respond_with_data(rules)
    for path in ("/early", "/late"):
        httpserver.expect_request(path).respond_with_data("<html/>")
    early, late = fetch_many(
        [(httpserver.url_for("/early"), "page"), (httpserver.url_for("/late"), "page")],
        make_settings(),
    )
    assert isinstance(early, RobotsDisallowedError)
    assert isinstance(late, FetchResult) and late.content == b"<html/>"


@pytest.mark.parametrize("status", [404, 500])
def test_unavailable_robots_allows_all(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=status)
    httpserver.expect_request("/page").respond_with_data("<html/>")
    result = fetch(httpserver.url_for("/page"), make_settings(retries=0), kind="page")
    assert result.content == b"<html/>"


# --- SSRF guard -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
@pytest.mark.parametrize("kind", ["feed", "page"])
def test_guard_refuses_loopback(httpserver: HTTPServer, host: str, kind: str) -> None:
    httpserver.expect_request("/").respond_with_data("secret")
    url = f"http://{host}:{httpserver.port}/"
    with pytest.raises(BlockedAddressError, match=r"refusing to connect to .* \(loopback\)"):
        fetch(url, make_settings(allow_private_networks=False), kind=kind)
    assert httpserver.log == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("::ffff:127.0.0.1", "IPv4-mapped IPv6"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-global"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_classify_address(address: str, reason: str | None) -> None:
    assert classify_address(address) == reason


# --- concurrency ------------------------------------------------------------------------------


async def max_simultaneous(settings: FetchSettings, requests: int) -> int:
    """Serve an aiohttp app that tracks simultaneous requests; fetch it `requests` times."""
    state = {"active": 0, "max": 0}

    async def handler(request: web.Request) -> web.Response:
        state["active"] += 1
        state["max"] = max(state["max"], state["active"])
        await asyncio.sleep(0.1)
        state["active"] -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{n}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Fetcher(settings) as fetcher:
            urls = [f"http://127.0.0.1:{port}/{n}" for n in range(requests)]
            results = await asyncio.gather(*(fetcher.fetch(url) for url in urls))
    finally:
        await runner.cleanup()
    assert all(result.content == b"ok" for result in results)
    return state["max"]


def test_per_host_concurrency_is_limited() -> None:
    settings = make_settings(per_host_concurrency=2, concurrency=16)
    assert asyncio.run(max_simultaneous(settings, 10)) == 2


def test_global_concurrency_is_limited() -> None:
    settings = make_settings(per_host_concurrency=10, concurrency=3)
    assert asyncio.run(max_simultaneous(settings, 10)) == 3


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    """The pool checks idle connections before reuse: one the server has closed is replaced."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        body = b"<rss/>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()  # keep-alive was implied, but the server hangs up at once

    async def go() -> list[bytes]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        bodies = []
        async with server, Fetcher(make_settings(retries=0)) as fetcher:
            for _ in range(3):
                bodies.append((await fetcher.fetch(f"http://127.0.0.1:{port}/")).content)
                await asyncio.sleep(0.1)  # the close reaches the client's idle socket
        return bodies

    assert asyncio.run(go()) == [b"<rss/>"] * 3
    assert connections == 3


class _ImportSearches:
    """A meta path finder that finds nothing and counts what it was asked for: every
    import that misses `sys.modules` passes here first."""

    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: object = None
    ) -> None:
        self.names[name] += 1


def test_requests_do_not_search_the_import_system(httpserver: HTTPServer) -> None:
    """httpcore asks `import sniffio` for every lock and event it sets up. Without sniffio
    installed, each of those is a failed import: a walk of sys.path that cost ~25% of the
    crawling process's CPU on the with-pages bench. Nothing may be searched per request."""
    httpserver.expect_request("/item").respond_with_data("<rss/>")
    searches = _ImportSearches()

    async def go() -> list[bytes]:
        async with Fetcher(make_settings()) as fetcher:
            await fetcher.fetch(httpserver.url_for("/item"))  # first use: lazy imports
            sys.meta_path.insert(0, searches)
            try:
                return [
                    (await fetcher.fetch(httpserver.url_for("/item"))).content for _ in range(20)
                ]
            finally:
                sys.meta_path.remove(searches)

    assert asyncio.run(go()) == [b"<rss/>"] * 20
    assert searches.names == Counter()
