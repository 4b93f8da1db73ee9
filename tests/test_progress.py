"""The fetch summary: every source counted; past 20 sources the quiet ones share a row."""

from __future__ import annotations

from rich.console import Console

from aggregator.models import SourceReport
from aggregator.progress import ALL_ROWS_UP_TO, summary_table


def rendered(reports: list[SourceReport]) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(summary_table(reports))
    return console.export_text()


def quiet(i: int) -> SourceReport:
    return SourceReport(source=f"quiet {i}", status="not modified", not_modified=True)


def test_past_the_limit_quiet_sources_share_one_row_and_the_footer_counts_all() -> None:
    busy = [
        SourceReport(source="fresh", status="ok", new=3),
        SourceReport(source="broken", status="error", error="HTTP 500"),
    ]
    text = rendered([*busy, *(quiet(i) for i in range(ALL_ROWS_UP_TO + 5))])
    assert "fresh" in text and "broken" in text and "HTTP 500" in text
    assert "quiet 0" not in text
    assert f"{ALL_ROWS_UP_TO + 5} more sources" in text
    assert f"{ALL_ROWS_UP_TO + 6} ok ({ALL_ROWS_UP_TO + 5} not modified), 1 failed" in text


def test_up_to_the_limit_every_source_has_its_row() -> None:
    text = rendered([quiet(i) for i in range(ALL_ROWS_UP_TO)])
    assert all(f"quiet {i} " in text for i in range(ALL_ROWS_UP_TO))
    assert "more sources" not in text


def test_sources_another_process_holds_are_counted_busy_not_ok() -> None:
    reports = [
        SourceReport(source="mine", status="ok", new=2),
        SourceReport(source="theirs", status="busy"),
        SourceReport(source="also theirs", status="busy"),
    ]
    text = rendered(reports)
    assert "1 ok (0 not modified), 2 busy (another process is crawling them), 0 failed" in text
