"""Start-up settings for a short-lived command-line process: the garbage collector, and
one import left out.

A command imports and builds a few hundred thousand objects that live until it exits:
modules, SQLAlchemy's and pydantic's tables of types, the settings. The cyclic collector
walks all of them each time it runs a full collection, and once more when the interpreter
shuts down. Measured on an unchanged re-poll of 200 feeds, that was about 50 ms while
importing and 150 ms at exit, out of 1.1 s.

So the console script (`aggregator.entry`) imports with the collector off, then freezes
what survived (`gc.freeze`: never scanned again, and its pages stay shared with forked
worker processes), and skips the interpreter's teardown when the command is done. The
collector is on while a command works, but collects the youngest generation every 20,000
net new objects instead of Python's 700 (`collect_less_often`; worker processes do the
same). A crawl builds and drops millions of short-lived dicts and lists, almost none of
them in a cycle: at 700 the crawling process of a cold 200-feed fetch with pages ran
~1,800 collections, 13 of them full, for ~1.1 CPU s; at 20,000, ~20 and none full, for
~0.2 s. Garbage caught in a cycle waits longer for the collection that frees it; the
main process's peak RSS on a cold feeds-only fetch went from 157 to 160 MB. Library use
(tests, `import aggregator`) is left alone.

`import httpx` also imports httpx's own command-line client when click, rich and pygments
are installed (they are: typer and rich bring them), which costs 18 ms and 4 MB in every
crawl for code that never runs. The console script stands a stub in for that module.

`import httpcore` likewise imports trio whenever it is installed, to serve trio event
loops: 55 ms of every command where something else brought trio in, for an event loop
this program never runs. The console script marks trio as absent (only if nothing has
imported it yet).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import types
from collections.abc import Iterator

_console_process = False
YOUNG_COLLECTION_THRESHOLD = 20_000  # net new container objects between young collections


def mark_console_process() -> None:
    """Say this process is the console script, so `settling` acts, and keep httpx from
    importing its command-line client and httpcore from importing trio."""
    global _console_process
    _console_process = True
    skip_httpx_cli()
    skip_trio()


def skip_trio() -> None:
    """Make ``import trio`` fail as if trio were not installed (httpcore then serves
    asyncio alone), unless trio is already imported."""
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]


def skip_httpx_cli() -> None:
    """Make `import httpx` skip ``httpx._main`` (its CLI: click, rich.syntax, pygments).

    Must run before httpx is first imported; ``httpx.main`` then says it is not loaded."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")
    stub.main = _httpx_cli_absent  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


def _httpx_cli_absent() -> None:
    raise SystemExit("the httpx command-line client is not loaded in this process")


@contextlib.contextmanager
def settling() -> Iterator[None]:
    """Run start-up work (imports, loading settings) without cyclic collection, then
    freeze everything it built. A no-op outside the console script."""
    if not _console_process:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        collect_less_often()
        if enabled:
            gc.enable()


def collect_less_often() -> None:
    """Run the youngest-generation collection every `YOUNG_COLLECTION_THRESHOLD` net new
    objects (never more often than now); the older generations keep their ratios."""
    young, middle, old = gc.get_threshold()
    if young != 0:  # 0: automatic collection is off; keep it so
        gc.set_threshold(max(young, YOUNG_COLLECTION_THRESHOLD), middle, old)
