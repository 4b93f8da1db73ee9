"""Which sources we follow, how healthy they are, and moving source lists in and out as OPML.

    effective_sources(settings, store)    config sources + imported ones the config does not
                                          define (by name or by URL): the config always wins
    effective_settings(settings, store)   the same, as a Settings for the pipeline
    import_opml(settings, store, data)    OPML → imported_sources table; problems per outline
    export_opml(settings, store, now)     effective sources → OPML 2.0 bytes
    collect_health(settings, store, now)  → SourceHealth rows (state, 304 rate, entries/day)
    render_sources_table(rows, console)   the rich table of `aggregator sources`

The typer commands (`sources_command`, `import_opml_command`, `export_opml_command`) are
plain functions registered by cli.py. Exit status: 0 ok; 2 usage, config, storage or
unreadable OPML; 3 some outlines were skipped (the others are imported).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aggregator.cli_options import ConfigOption, fail, open_store, settings_or_exit
from aggregator.errors import AggregatorError
from aggregator.export.files import atomic_write
from aggregator.settings import Settings, SourceSettings
from aggregator.store import SourceState
from aggregator.store.values import ImportCounts, ImportedSource

if TYPE_CHECKING:
    from aggregator.export.opml import OpmlProblem
    from aggregator.store import Store

EXIT_USAGE = 2
EXIT_SOME_SKIPPED = 3
ENTRIES_WINDOW_DAYS = 7
_STATE_STYLES = {"ok": "green", "erroring": "yellow", "dead": "bold red", "retired": "dim"}


def _to_settings(source: ImportedSource) -> SourceSettings | None:
    try:
        return SourceSettings(
            name=source.name,
            url=source.url,
            category=source.category,
            type=source.type,
            pages=source.pages,
        )
    except ValidationError:
        return None


def effective_sources(settings: Settings, store: Store) -> list[SourceSettings]:
    """The config's sources, then each imported source whose name and URL it does not use."""
    sources = list(settings.sources)
    names = {source.name for source in sources}
    urls = {source.url for source in sources}
    for imported in store.imported_sources():
        source = _to_settings(imported)
        if source is None or source.name in names or source.url in urls:
            continue
        sources.append(source)
        names.add(source.name)
        urls.add(source.url)
    return sources


def effective_settings(settings: Settings, store: Store) -> Settings:
    """`settings` with `effective_sources` as its sources (names stay unique)."""
    return settings.model_copy(update={"sources": tuple(effective_sources(settings, store))})


@dataclass(frozen=True, slots=True)
class OpmlImportReport:
    """What `import_opml` did: store counts, names the config overrides, skipped outlines."""

    counts: ImportCounts
    shadowed: tuple[str, ...]
    problems: tuple[OpmlProblem, ...]


def import_opml(
    settings: Settings, store: Store, data: bytes, *, origin: str = "<opml>"
) -> OpmlImportReport:
    """Store the feeds of an OPML document as imported sources (ParseError if not OPML)."""
    from aggregator.export.opml import OpmlProblem, parse_opml  # OPML commands only

    document = parse_opml(data, origin=origin)
    problems = list(document.problems)
    accepted: list[ImportedSource] = []
    for feed in document.feeds:
        candidate = ImportedSource(feed.name, feed.url, feed.category, feed.type, feed.pages)
        try:
            SourceSettings(
                name=feed.name,
                url=feed.url,
                category=feed.category,
                type=feed.type,
                pages=feed.pages,
            )
        except ValidationError as exc:
            reason = "; ".join(str(error["msg"]) for error in exc.errors())
            problems.append(OpmlProblem(f'outline "{feed.name[:60]}"', f"{reason}; skipped"))
            continue
        accepted.append(candidate)
    counts = store.save_imported_sources(accepted)
    defined = {source.name for source in settings.sources}
    shadowed = tuple(source.name for source in accepted if source.name in defined)
    return OpmlImportReport(counts, shadowed, tuple(problems))


def export_opml(settings: Settings, store: Store, now: datetime) -> bytes:
    """OPML 2.0 of the effective sources."""
    from aggregator.export.opml import OpmlFeed, render_opml  # OPML commands only

    feeds = [
        OpmlFeed(source.name, source.url, source.category, source.type, source.pages)
        for source in effective_sources(settings, store)
    ]
    return render_opml(feeds, now=now)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One line of the sources table.

    `origin` is "config", "imported" or "state" (a saved state for a source no longer
    followed); `final_url` is where the feed redirects when that differs from `url`;
    `overrides` is the imported URL that a config source of the same name replaces.
    """

    name: str
    url: str
    origin: str
    state: SourceState | None
    final_url: str | None = None
    overrides: str | None = None
    entries_per_day: float = 0.0

    @property
    def not_modified_rate(self) -> float | None:
        """Share of fetches answered 304 Not Modified; None before the first fetch."""
        if self.state is None or not self.state.fetch_count:
            return None
        return self.state.not_modified_count / self.state.fetch_count


def collect_health(settings: Settings, store: Store, now: datetime) -> list[SourceHealth]:
    """A SourceHealth for each effective source, then for each saved state no longer followed."""
    states = {state.name: state for state in store.list_source_states()}
    since = now - timedelta(days=ENTRIES_WINDOW_DAYS)
    recent = store.count_records_by_source(since.astimezone(UTC))
    imported = {source.name: source.url for source in store.imported_sources()}
    defined = {source.name for source in settings.sources}
    rows: list[SourceHealth] = []
    for source in effective_sources(settings, store):
        state = states.pop(source.name, None)
        shadowed = imported.get(source.name) if source.name in defined else None
        rows.append(
            SourceHealth(
                name=source.name,
                url=source.url,
                origin="config" if source.name in defined else "imported",
                state=state,
                final_url=_redirect(source.url, state),
                overrides=shadowed if shadowed != source.url else None,
                entries_per_day=recent.get(source.name, 0) / ENTRIES_WINDOW_DAYS,
            )
        )
    for name, state in sorted(states.items()):
        per_day = recent.get(name, 0) / ENTRIES_WINDOW_DAYS
        rows.append(SourceHealth(name, state.url, "state", state, None, None, per_day))
    return rows


def _redirect(url: str, state: SourceState | None) -> str | None:
    final = state.final_url if state else None
    return final if final and final != url else None


def _ago(moment: datetime | None, now: datetime) -> str:
    """``5m ago`` / ``in 2h`` / ``-``."""
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    size = abs(seconds)
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if size >= span:
            amount = f"{int(size // span)}{unit}"
            break
    else:
        amount = f"{int(size)}s"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def _url_cell(row: SourceHealth) -> Text:
    cell = Text(row.url)
    moved = row.state.url_override if row.state else None
    pending = row.state.redirect_url if row.state else None
    if moved:
        cell.append(f"\n→ moved permanently: fetched from {moved}", style="bold cyan")
    elif pending:
        cell.append(f"\n→ permanent redirect to {pending} (unconfirmed)", style="cyan")
    if row.final_url and row.final_url not in (moved, pending):
        cell.append(f"\n→ redirects to {row.final_url}", style="cyan")
    if row.overrides:
        cell.append(f"\n(config overrides imported {row.overrides})", style="magenta")
    return cell


def _state_cell(row: SourceHealth) -> Text:
    if row.state is None:
        return Text("new", style="cyan")
    return Text(row.state.state, style=_STATE_STYLES.get(row.state.state, ""))


def _name_cell(row: SourceHealth) -> Text:
    return Text.assemble(row.name, (f"\n{row.origin}", "dim"))


def _fetch_cell(state: SourceState | None, now: datetime) -> Text:
    if state is None or state.last_fetch_at is None:
        return Text("-")
    status = f" · {state.last_status}" if state.last_status is not None else ""
    failed = state.last_status is not None and state.last_status >= 400
    return Text.assemble(_ago(state.last_fetch_at, now), (status, "red" if failed else ""))


def _errors_cell(state: SourceState | None) -> Text:
    if state is None or (not state.error_count and not state.last_error):
        return Text("0")
    cell = Text(str(state.error_count), style="bold")
    if state.last_error:
        cell.append(f" {state.last_error}", style="red")
    return cell


def _row_cells(row: SourceHealth, now: datetime) -> list[Text | str]:
    state = row.state
    rate = row.not_modified_rate
    return [
        _name_cell(row),
        _url_cell(row),
        _state_cell(row),
        _fetch_cell(state, now),
        _ago(state.next_check_at if state else None, now),
        _errors_cell(state),
        "-" if rate is None else f"{rate:.0%}",
        f"{row.entries_per_day:.1f}",
    ]


def render_sources_table(rows: Sequence[SourceHealth], console: Console, now: datetime) -> None:
    """Print the health table of `rows` to `console` (long URLs and errors wrap)."""
    table = Table(
        title=f"{len(rows)} source(s)",
        title_justify="left",
        caption="Fetched: last fetch · HTTP status.  304: share of fetches not modified.  "
        f"/day: records of the last {ENTRIES_WINDOW_DAYS} days per day.",
        caption_justify="left",
    )
    table.add_column("Name", overflow="fold", min_width=5)
    table.add_column("URL", overflow="fold", ratio=3, min_width=8)
    table.add_column("State", no_wrap=True)
    table.add_column("Fetched", no_wrap=True)
    table.add_column("Next", no_wrap=True)
    table.add_column("Errors", overflow="fold", ratio=2, min_width=5)
    table.add_column("304", justify="right", no_wrap=True)
    table.add_column("/day", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*_row_cells(row, now))
    console.print(table)


def sources_command(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Show the health of every source: state, last fetch, errors, 304 rate, entries per day.

    Example: aggregator sources --config config.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_or_exit(config)
    now = datetime.now(UTC)
    try:
        with open_store(settings) as store:
            rows = collect_health(settings, store, now)
    except AggregatorError as exc:
        fail(str(exc))
    render_sources_table(rows, Console(), now)


def import_opml_command(
    file: Annotated[Path, typer.Argument(help="The OPML file to import.")],
    config: ConfigOption = None,
) -> None:
    """Import the feeds of an OPML file; the config still wins for names it defines.

    Example: aggregator sources import-opml subscriptions.opml
    """
    settings = settings_or_exit(config)
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    try:
        with open_store(settings) as store:
            report = import_opml(settings, store, data, origin=str(file))
    except AggregatorError as exc:
        fail(str(exc))
    _print_import_report(report)
    if report.problems:
        raise typer.Exit(EXIT_SOME_SKIPPED)


def _print_import_report(report: OpmlImportReport) -> None:
    counts = report.counts
    out = Console()
    out.print(
        f"imported {counts.added + counts.updated + counts.unchanged} source(s): "
        f"{counts.added} new, {counts.updated} updated, {counts.unchanged} unchanged",
        highlight=False,
    )
    if report.shadowed:
        names = ", ".join(report.shadowed)
        out.print(Text(f"the config defines (and wins for): {names}", style="yellow"))
    err = Console(stderr=True)
    for problem in report.problems:
        err.print(Text.assemble(("skipped ", "yellow"), str(problem)), soft_wrap=True)


def export_opml_command(
    out: Annotated[
        str, typer.Option("--out", "-o", help="File to write (atomically), or - for stdout.")
    ] = "-",
    config: ConfigOption = None,
) -> None:
    """Write the effective sources (config + imported) as OPML 2.0.

    Example: aggregator sources export-opml --out sources.opml
    """
    settings = settings_or_exit(config)
    try:
        with open_store(settings) as store:
            data = export_opml(settings, store, datetime.now(UTC))
        if out == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            atomic_write(Path(out), data)
    except AggregatorError as exc:
        fail(str(exc))
