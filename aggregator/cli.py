"""Thin typer commands over the same functions the scheduled jobs use.

Exit status: 0 success; 1 a verified record was altered; 2 usage or configuration error;
3 some sources failed (what succeeded is stored and exported); 130 stopped by Ctrl-C and
143 by SIGTERM (which stops a command as Ctrl-C does: `_sigterm_stops_as_sigint`).

Start-up is part of every command's cost (a re-poll where every feed answers 304 is mostly
start-up), so each command imports what it uses when it runs, and the commands defined in
other modules (`run`, `worker`, `serve`, `db`, `sources`) are imported only when invoked or
listed by `aggregator --help` (`_LazyGroup`): `aggregator fetch` never loads the daemon, the
scheduler, the job queue, the HTTP server or the migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

from aggregator import startup
from aggregator.cli_options import ConfigOption, fail, open_store, settings_or_exit
from aggregator.errors import AggregatorError, ConfigError

if TYPE_CHECKING:  # typer's own (vendored) click types
    from types import FrameType

    from typer._click import core as click

EXIT_OK = 0
EXIT_ALTERED = 1
EXIT_USAGE = 2
EXIT_SOURCES_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _command(module: str, function: str, name: str) -> Callable[[], click.Command]:
    """A command defined as `function` in `module`, built when first needed."""

    def build() -> click.Command:
        single = typer.Typer(add_completion=False)
        single.command(name)(getattr(importlib.import_module(module), function))
        return typer.main.get_command(single)

    return build


def _sources_group() -> click.Command:
    from aggregator import sources

    group = typer.Typer(name="sources", help="Source health, and OPML import/export.")
    group.callback(invoke_without_command=True)(sources.sources_command)
    group.command("import-opml")(sources.import_opml_command)
    group.command("export-opml")(sources.export_opml_command)
    return typer.main.get_group(group)


def _db_group() -> click.Command:
    from aggregator.store.migrate import db_upgrade_command

    group = typer.Typer(name="db", help="Database schema migrations.")
    group.command("upgrade")(db_upgrade_command)
    return typer.main.get_group(group)


_LAZY_COMMANDS: dict[str, Callable[[], click.Command]] = {
    "run": _command("aggregator.daemon", "run_command", "run"),
    "worker": _command("aggregator.distributed", "worker_command", "worker"),
    "db": _db_group,
    "serve": _command("aggregator.serve", "serve_command", "serve"),
    "sources": _sources_group,
}


class _LazyGroup(TyperGroup):
    """The top-level group: commands from other modules are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The commands defined here, then the lazily imported ones."""
        return [*super().list_commands(ctx), *_LAZY_COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called `cmd_name`, importing its module when it lives elsewhere."""
        build = _LAZY_COMMANDS.get(cmd_name)
        if build is None:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self.commands:
            self.add_command(build(), cmd_name)
        return self.commands[cmd_name]


app = typer.Typer(
    cls=_LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Topic-tracking news aggregator: crawl feeds into seed-shaped records and export them.",
)
console = Console(stderr=True)


@app.command()
def fetch(
    config: ConfigOption = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")
    ] = None,
    no_pages: Annotated[
        bool, typer.Option("--no-pages", help="Feeds only: do not fetch article pages.")
    ] = False,
    no_export: Annotated[
        bool, typer.Option("--no-export", help="Do not refresh the export directory.")
    ] = False,
) -> None:
    """Crawl all (or the named) sources once, store the records and refresh the exports.

    Example: aggregator fetch --source "Ars Technica" --no-pages
    """
    with startup.settling():
        from aggregator.export.manifest import export_fingerprint, export_is_stale
        from aggregator.pipeline import CrawlOptions, crawl, start_workers_for_new_store
        from aggregator.progress import CrawlProgress, print_summary

        settings = settings_or_exit(config)
    options = CrawlOptions(source_names=tuple(source or ()), fetch_pages=not no_pages)
    try:
        start_workers_for_new_store(settings, options.source_names)
        with open_store(settings) as store:
            with CrawlProgress(
                console, total=len(options.source_names or settings.sources)
            ) as progress:
                reports = asyncio.run(
                    crawl(settings, store, options=options, on_report=progress.advance)
                )
            export_dir, fingerprint = Path(settings.export.dir), export_fingerprint(settings)
            if not no_export and export_is_stale(
                export_dir, reports, store.change_marker, fingerprint
            ):
                from aggregator import operations  # only now: the writers are heavy imports

                operations.export_configured(settings, store)
    except ConfigError as exc:
        fail(str(exc))
    except AggregatorError as exc:
        fail(str(exc), EXIT_SOURCES_FAILED)
    if not reports:
        console.print(
            "no sources to crawl: list them under `sources:` in the config, or import an "
            "OPML file with `aggregator sources import-opml FILE`"
        )
        return
    print_summary(Console(), reports)
    if any(report.failed for report in reports):
        raise typer.Exit(EXIT_SOURCES_FAILED)


@app.command()
def extract(
    url: Annotated[str, typer.Argument(help="The article URL (used to resolve relative links).")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Read the page from this file; fetch nothing.")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="json or md.")] = "json",
    config: ConfigOption = None,
) -> None:
    """Turn one article page into one record and print it.

    Example: aggregator extract https://example.com/story --html saved.html --format md
    """
    from aggregator import operations

    if output_format not in ("json", "md"):
        fail(f"--format: expected json or md, got {output_format!r}")
    settings = settings_or_exit(config)
    try:
        record = operations.extract_one(settings, url, html)
    except AggregatorError as exc:
        fail(str(exc), EXIT_SOURCES_FAILED)
    typer.echo(operations.render(record, output_format), nl=False)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Markdown (front matter) or .jsonl files.")],
    config: ConfigOption = None,
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Recompute topics, quality, heat and related.")
    ] = False,
) -> None:
    """Import records from Markdown-with-front-matter or JSONL files; idempotent.

    Example: aggregator import ../shared/seed/000_f39ce92c9ebe8ec3.txt
    """
    from aggregator import operations

    settings = settings_or_exit(config)
    try:
        with open_store(settings) as store:
            summary = operations.import_paths(settings, store, paths, recompute=recompute)
    except AggregatorError as exc:
        fail(str(exc))
    Console().print(
        f"imported {summary.records} record(s) from {summary.files} file(s): "
        f"{summary.new} new, {summary.updated} updated, {summary.unchanged} unchanged"
    )


@app.command()
def export(
    output_format: Annotated[str, typer.Option("--format", "-f", help="md or jsonl.")] = "md",
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Directory, or - for stdout (default: export.dir)."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Only records with this topic.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only records published at or after this ISO date."),
    ] = None,
    published_only: Annotated[
        bool, typer.Option("--published-only", help="Only records marked published.")
    ] = False,
    extended: Annotated[
        bool, typer.Option("--extended", help="JSONL only: add story and qualityReasons.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Export stored records as Markdown files or JSON Lines.

    Example: aggregator export --format jsonl --out - --topic AI --since 2026-01-01 --extended
    """
    from aggregator import operations

    if output_format not in ("md", "jsonl"):
        fail(f"--format: expected md or jsonl, got {output_format!r}")
    settings = settings_or_exit(config)
    try:
        since_at = operations.parse_since(since)
        with open_store(settings) as store:
            request = operations.ExportRequest(
                output_format,
                out,
                topic,
                since_at,
                published_only=published_only,
                extended=extended,
            )
            summary = operations.export_records(settings, store, request, stdout=sys.stdout)
    except AggregatorError as exc:
        fail(str(exc))
    if out != "-":
        Console().print(summary)


@app.command()
def verify(
    paths: Annotated[list[Path], typer.Argument(help="Exported .md or .jsonl files.")],
    config: ConfigOption = None,
) -> None:
    """Check each record's seal against its public fields; exit 1 if any was altered.

    Example: aggregator verify data/export/*.md
    """
    from aggregator import operations

    settings = settings_or_exit(config)
    try:
        outcomes = operations.verify_paths(settings, paths)
    except AggregatorError as exc:
        fail(str(exc))
    out = Console()
    for outcome in outcomes:
        colour = "green" if outcome.ok else "red"
        out.print(
            f"[{colour}]{'ok' if outcome.ok else 'ALTERED'}[/] {outcome.where}: {outcome.message}",
            highlight=False,
            soft_wrap=True,
        )
    if not outcomes or not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(EXIT_ALTERED)


@app.command()
def retag(config: ConfigOption = None) -> None:
    """Re-apply the configured topic rules to every stored record, without fetching.

    Example: aggregator retag --config config.yaml
    """
    from aggregator import inspection

    settings = settings_or_exit(config)
    try:
        with open_store(settings) as store:
            summary = inspection.retag(settings, store)
    except AggregatorError as exc:
        fail(str(exc))
    Console().print(f"retagged {summary.total} record(s): {summary.changed} changed")


@app.command()
def explain(
    key: Annotated[str, typer.Argument(help="A record id or its webUrl / ampWebUrl.")],
    config: ConfigOption = None,
) -> None:
    """Show why a record has its quality score, topics and story.

    Example: aggregator explain https://example.com/news/story
    """
    from aggregator import inspection
    from aggregator.progress import print_explanation

    settings = settings_or_exit(config)
    try:
        with open_store(settings) as store:
            explanation = inspection.explain(settings, store, key)
    except AggregatorError as exc:
        fail(str(exc))
    if explanation is None:
        fail(f"no record with id or URL {key!r}", EXIT_ALTERED)
    print_explanation(Console(), explanation)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _sigterm_stops_as_sigint() as terminated:
        status = _run_app()
    if status == EXIT_INTERRUPTED:
        console.print("terminated" if terminated.is_set() else "interrupted")
        sys.exit(EXIT_TERMINATED if terminated.is_set() else EXIT_INTERRUPTED)
    sys.exit(status)


def _run_app() -> int:
    """The command's exit status (a usage error exits here, with one line)."""
    try:
        status = app(standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):  # what older typer raises; newer returns 130
        return EXIT_INTERRUPTED
    except TyperException as exc:  # a bad command, option or argument: one line, no box
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help(), err=True)
        else:
            where = f" (see: {context.command_path} --help)" if context is not None else ""
            typer.echo(f"error: {getattr(exc, 'format_message', exc.__str__)()}{where}", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    return status if isinstance(status, int) else EXIT_OK


@contextlib.contextmanager
def _sigterm_stops_as_sigint() -> Iterator[threading.Event]:
    """Within the block, SIGTERM stops the command as Ctrl-C does; yields an event set when
    it came.

    A service manager, `timeout` or `docker stop` sends SIGTERM, whose default action ends
    the process on the spot: no cleanup ran, so the forkserver's temporary directory stayed
    behind and multiprocessing warned of leaked semaphores. Passed on to the SIGINT handler
    instead, it cancels the crawl under `asyncio.run`, which then unwinds (source crawls
    cancelled; workers, linker and store closed), or raises KeyboardInterrupt elsewhere.
    Commands that handle SIGTERM themselves (`run`, `worker`) replace this handler."""
    received = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        received.set()
        interrupt = signal.getsignal(signal.SIGINT)
        if callable(interrupt):
            interrupt(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job of a shell): SIGTERM must still stop it
            raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    if previous != signal.SIG_DFL:  # someone chose how this process ends: leave it
        yield received
        return
    signal.signal(signal.SIGTERM, stop)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
