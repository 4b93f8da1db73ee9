"""Terminal output for crawls: a rich progress bar while it runs, a summary table after."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aggregator.models import SourceReport

if TYPE_CHECKING:  # a fetch prints no explanation: inspection imports the store's queries
    from aggregator.inspection import Explanation


class CrawlProgress:
    """A progress bar advanced once per finished source (silent when not a terminal)."""

    def __init__(self, console: Console, *, total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]crawling"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task("", total=total)

    def __enter__(self) -> CrawlProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def advance(self, report: SourceReport) -> None:
        """Count one finished source and show its name."""
        self._progress.update(self._task, advance=1, description=report.source)


ALL_ROWS_UP_TO = 20  # more sources than this: the quiet ones share one row


def summary_table(reports: Sequence[SourceReport]) -> Table:
    """One row per source (status, new, updated, not modified, errors) and a totals row.

    Past `ALL_ROWS_UP_TO` sources, those with nothing to report (not modified, or fetched
    with nothing new or changed) share one row: a re-poll of 5,000 feeds stays readable."""
    table = Table(title="fetch summary", show_footer=True)
    table.add_column("source", footer="total")
    table.add_column("status", footer=_status_footer(reports))
    for name, attr in (("new", "new"), ("updated", "updated"), ("unchanged", "unchanged")):
        total = sum(getattr(report, attr) for report in reports)
        table.add_column(name, justify="right", footer=str(total))
    table.add_column("pages", justify="right", footer=str(sum(r.pages_fetched for r in reports)))
    table.add_column("error", overflow="fold")
    quiet = [report for report in reports if _is_quiet(report)]
    if len(reports) <= ALL_ROWS_UP_TO or len(quiet) < 2:
        quiet = []
    shown = [report for report in reports if report not in quiet] if quiet else reports
    for report in shown:
        table.add_row(
            report.source,
            _status_cell(report),
            str(report.new),
            str(report.updated),
            str(report.unchanged),
            f"{report.pages_fetched}"
            + (f" ({report.page_errors} failed)" if report.page_errors else ""),
            report.error or "",
        )
    if quiet:
        unchanged = str(sum(report.unchanged for report in quiet))
        label = f"{len(quiet)} {'more ' if len(shown) else ''}sources"
        table.add_row(label, "[dim]nothing new[/]", "0", "0", unchanged)
    return table


def _is_quiet(report: SourceReport) -> bool:
    nothing_new = not (report.new or report.updated or report.pages_fetched)
    return nothing_new and report.status in ("ok", "not modified") and not report.failed


def _status_cell(report: SourceReport) -> str:
    if report.failed:
        return "[red]error[/]"
    if report.not_modified:
        return "[dim]not modified[/]"
    if report.status == "busy":
        return "[yellow]busy (claimed by another process)[/]"
    return "[green]ok[/]"


def _status_footer(reports: Sequence[SourceReport]) -> str:
    failed = sum(report.failed for report in reports)
    not_modified = sum(report.not_modified for report in reports)
    busy = sum(report.status == "busy" and not report.failed for report in reports)
    ok = len(reports) - failed - busy
    held = f", {busy} busy (another process is crawling them)" if busy else ""
    return f"{ok} ok ({not_modified} not modified){held}, {failed} failed"


def print_summary(console: Console, reports: Sequence[SourceReport]) -> None:
    """Print the summary table."""
    console.print(summary_table(reports))


def print_explanation(console: Console, explanation: Explanation) -> None:
    """Print a record's quality breakdown, topic hits and story."""
    record = explanation.stored.record
    console.print(f"[bold]{record.title}[/]\n{record.web_url}", highlight=False)
    note = (
        " — stored score was imported; parts recomputed now"
        if explanation.reasons_recomputed
        else ""
    )
    quality = Table(title=f"quality {record.quality} (published: {record.is_published}){note}")
    quality.add_column("part")
    quality.add_column("points", justify="right")
    quality.add_column("why")
    for reason in explanation.reasons:
        quality.add_row(reason.name, f"{reason.points:+d}", reason.detail)
    console.print(quality)
    topics = Table(title=f"topics: {', '.join(record.topics) or 'none'}")
    topics.add_column("topic")
    topics.add_column("score", justify="right")
    topics.add_column("hits", overflow="fold")
    for match in explanation.topic_matches:
        topics.add_row(match.topic, f"{match.score:.1f}", ", ".join(match.hits))
    console.print(topics)
    story = explanation.story
    if story is None:
        console.print("story: none yet")
    else:
        providers = ", ".join(story.providers)
        console.print(
            f"story {story.id}: {story.size} record(s) from {providers}; heat {record.heat}"
        )
