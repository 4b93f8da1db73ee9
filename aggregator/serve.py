"""`aggregator serve`: the export directory over HTTP, read-only, plus health and metrics.

    GET /healthz      200 "ok" while the process is alive
    GET /readyz       200 {"status": "ready"} when every readiness check passes,
                      else 503 {"status": "not ready", "reasons": [...]}
    GET /metrics      Prometheus text format of a prometheus-client registry
    GET /<path>       a file of the export directory: fixed content types, ETag and
                      Last-Modified with 304 answers, no listings, no dotfiles, nothing
                      outside the directory (``..``, ``%2e%2e`` and symlinks are refused)

`build_app` returns the aiohttp application and `start_http` starts it on the caller's loop
and returns the runner, so the daemon can serve from its own event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer
from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from rich.console import Console

from aggregator.cli_options import ConfigOption, fail, settings_or_exit
from aggregator.dates import utc_now
from aggregator.metrics import REGISTRY, render_metrics
from aggregator.store import Store

DatabaseCheck = Callable[[], None]
Heartbeat = Callable[[], datetime | None]
CHECK_TIMEOUT_SECONDS = 5.0

_CONTENT_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".jsonl": "application/x-ndjson",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/json",
    ".opml": "text/x-opml",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Readiness:
    """What /readyz checks; every check is an injectable callable.

    `database` raises when the database is unreachable (default: ping the store at the
    app's `store_url`). `heartbeat`, when given, returns the time of the last crawl or
    daemon tick (None: not yet); it must be at most `max_age` old.
    """

    database: DatabaseCheck | None = None
    heartbeat: Heartbeat | None = None
    max_age: timedelta = timedelta(hours=1)
    clock: Callable[[], datetime] = field(default=utc_now)


class StorePing:
    """A database check that opens the store once, then runs ``SELECT 1`` on each call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def __call__(self) -> None:
        if self._store is None:
            self._store = Store(self.url, busy_timeout_seconds=CHECK_TIMEOUT_SECONDS)
        self._store.ping()

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None


def last_crawl_heartbeat(store: Store) -> Heartbeat:
    """A heartbeat reading the newest `last_fetch_at` of any source in `store`."""

    def newest() -> datetime | None:
        times = [s.last_fetch_at for s in store.list_source_states() if s.last_fetch_at]
        return max(times, default=None)

    return newest


def content_type_for(relative: PurePosixPath) -> str:
    """The Content-Type of an export file (JSON Feed under feeds/, plain JSON elsewhere)."""
    suffix = relative.suffix.lower()
    if suffix == ".json" and relative.parts[:1] == ("feeds",):
        return "application/feed+json"
    return _CONTENT_TYPES.get(suffix, "application/octet-stream")


def resolve_export_path(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root`, or None when it must not be served."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = PurePosixPath(relative).parts
    if any(part in ("/", "..") or part.startswith(".") for part in parts):
        return None
    try:
        base = root.resolve(strict=True)
        target = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = render_metrics(request.app[_REGISTRY_KEY])
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})


async def _run_check(check: Callable[[], object]) -> object:
    return await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_SECONDS)


async def readiness_reasons(readiness: Readiness) -> list[str]:
    """Why the service is not ready (empty when it is)."""
    reasons: list[str] = []
    if readiness.database is not None:
        try:
            await _run_check(readiness.database)
        except Exception as exc:  # any failure of an injected check means "not ready"
            reasons.append(f"database unreachable: {exc or type(exc).__name__}")
    if readiness.heartbeat is not None:
        reasons.extend(await _heartbeat_reasons(readiness))
    return reasons


async def _heartbeat_reasons(readiness: Readiness) -> list[str]:
    assert readiness.heartbeat is not None
    try:
        beat = await _run_check(readiness.heartbeat)
    except Exception as exc:  # any failure of an injected check means "not ready"
        return [f"heartbeat unavailable: {exc or type(exc).__name__}"]
    if not isinstance(beat, datetime):
        return ["no heartbeat yet"]
    age = readiness.clock() - beat
    if age > readiness.max_age:
        return [f"last heartbeat {beat.isoformat()} is {age} old (limit {readiness.max_age})"]
    return []


async def _readyz(request: web.Request) -> web.Response:
    reasons = await readiness_reasons(request.app[_READINESS_KEY])
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


async def _export_file(request: web.Request) -> web.StreamResponse:
    root: Path = request.app[_ROOT_KEY]
    relative = request.match_info["path"]
    path = await asyncio.to_thread(resolve_export_path, root, relative)
    if path is None:
        raise web.HTTPNotFound(text="not found")
    content_type = content_type_for(PurePosixPath(relative))
    headers = {hdrs.CONTENT_TYPE: content_type, hdrs.CACHE_CONTROL: "no-cache"}
    return web.FileResponse(path, headers=headers)


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_SECURITY_HEADERS)


_ROOT_KEY = web.AppKey("export_root", Path)
_REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
_READINESS_KEY = web.AppKey("readiness", Readiness)


def build_app(
    export_dir: Path,
    store_url: str | None,
    registry: CollectorRegistry = REGISTRY,
    readiness: Readiness | None = None,
) -> web.Application:
    """The read-only export server; /readyz pings `store_url` unless `readiness` says how."""
    readiness = readiness or Readiness()
    ping: StorePing | None = None
    if readiness.database is None and store_url is not None:
        ping = StorePing(store_url)
        readiness = Readiness(ping, readiness.heartbeat, readiness.max_age, readiness.clock)
    app = web.Application()
    app[_ROOT_KEY] = export_dir
    app[_REGISTRY_KEY] = registry
    app[_READINESS_KEY] = readiness
    app.on_response_prepare.append(_security_headers)
    if ping is not None:
        app.on_cleanup.append(lambda _app: asyncio.to_thread(ping.close))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/{path:.*}", _export_file)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving `app` on host:port in the running loop; call ``runner.cleanup()`` to stop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080``, ``:8080`` means 127.0.0.1) → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether `host` is localhost or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve_forever(app: web.Application, host: str, port: int, announce: str) -> None:
    """Serve `app` until cancelled (Ctrl-C), printing `announce` once listening."""
    runner = await start_http(app, host, port)
    try:
        Console(stderr=True).print(announce, highlight=False, markup=False)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve_command(
    http: Annotated[
        str, typer.Option("--http", help="HOST:PORT to listen on (loopback unless --public).")
    ] = "127.0.0.1:8080",
    public: Annotated[
        bool, typer.Option("--public", help="Allow listening on a non-loopback address.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Serve the export directory read-only, with /healthz, /readyz and /metrics.

    Example: aggregator serve --http 127.0.0.1:8080
    """
    try:
        host, port = parse_listen(http)
    except ValueError as exc:
        fail(f"--http: {exc}")
    if not public and not is_loopback(host):
        fail(f"--http: {host} is not a loopback address; add --public to listen on it")
    settings = settings_or_exit(config)
    export_dir = Path(settings.export.dir)
    app = build_app(export_dir, settings.storage.url)
    shown = f"[{host}]" if ":" in host else host
    announce = f"serving {export_dir} on http://{shown}:{port}/ (Ctrl-C to stop)"
    try:
        asyncio.run(serve_forever(app, host, port, announce))
    except OSError as exc:
        fail(f"cannot listen on {http}: {exc.strerror or exc}")
