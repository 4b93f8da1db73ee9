"""The sources health table: states, overrides, 304 rate and entries per day, on real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from aggregator.models import Provenance, Provider, Record
from aggregator.settings import Settings, SourceSettings
from aggregator.sources import (
    collect_health,
    render_sources_table,
    sources_command,
)
from aggregator.store import SourceState, Store
from aggregator.store.imported import ImportedSource

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "health.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{db}") as opened:
        yield opened


def _record(source: str, n: int, published: datetime | None) -> Record:
    return Record(
        title=f"Story {n}",
        web_url=f"https://{source.lower()}.example/story-{n}",
        published=published,
        provider=Provider(name=source, domain=f"{source.lower()}.example"),
        provenance=Provenance(source_name=source, guid=f"g{n}"),
    )


def _settings(db: Path) -> Settings:
    return Settings(
        storage={"url": f"sqlite:///{db}"},  # type: ignore[arg-type]
        sources=(
            SourceSettings(name="Alpha", url="https://alpha.example/feed"),
            SourceSettings(name="Beta", url="https://beta.example/rss"),
            SourceSettings(name="Gamma", url="https://gamma.example/atom"),
        ),
    )


def _seed(store: Store) -> None:
    store.save_imported_sources(
        [
            ImportedSource("Beta", "https://old-beta.example/rss"),
            ImportedSource("Delta", "https://delta.example/feed", "Science"),
        ]
    )
    base = SourceState(name="Alpha", url="https://alpha.example/feed", last_status=200)
    store.save_source_state(
        replace(
            base,
            final_url="https://alpha.example/new-feed",
            last_fetch_at=NOW - timedelta(minutes=5),
            next_check_at=NOW + timedelta(hours=2),
            fetch_count=4,
            not_modified_count=3,
        )
    )
    store.save_source_state(
        SourceState(
            name="Beta",
            url="https://beta.example/rss",
            last_status=503,
            last_error="HTTP 503 Service Unavailable",
            error_count=3,
            fetch_count=5,
            state="erroring",
            last_fetch_at=NOW - timedelta(hours=1),
        )
    )
    store.save_source_state(
        SourceState(name="Gamma", url="https://gamma.example/atom", state="dead", error_count=40)
    )
    store.save_source_state(SourceState(name="Old", url="https://old.example/", state="retired"))
    recent = [_record("Alpha", n, NOW - timedelta(days=n)) for n in range(1, 8)]
    stale = [_record("Alpha", 50, NOW - timedelta(days=30))]
    store.upsert_records([*recent, *stale])


def _render(settings: Settings, store: Store) -> str:
    console = Console(record=True, width=250, color_system=None)
    render_sources_table(collect_health(settings, store, NOW), console, NOW)
    return console.export_text()


def test_health_rows(db: Path, store: Store) -> None:
    _seed(store)
    rows = {row.name: row for row in collect_health(_settings(db), store, NOW)}
    assert list(rows) == ["Alpha", "Beta", "Gamma", "Delta", "Old"]
    assert rows["Alpha"].not_modified_rate == 0.75
    assert rows["Alpha"].entries_per_day == 1.0  # 7 in the window (edge included), 1 stale
    assert rows["Alpha"].final_url == "https://alpha.example/new-feed"
    assert rows["Beta"].overrides == "https://old-beta.example/rss"
    assert (rows["Delta"].origin, rows["Delta"].state) == ("imported", None)
    assert rows["Old"].origin == "state"
    assert store.count_source_states() == {
        "ok": 1,
        "erroring": 1,
        "dead": 1,
        "retired": 1,
    }


def test_table_shows_states_errors_and_overrides(db: Path, store: Store) -> None:
    _seed(store)
    text = _render(_settings(db), store)
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "erroring" in lines["Beta"] and "503" in lines["Beta"]
    assert "HTTP 503 Service Unavailable" in lines["Beta"]
    assert "dead" in lines["Gamma"] and "40" in lines["Gamma"]
    assert "retired" in lines["Old"]
    assert "new" in lines["Delta"] and "0.0" in lines["Delta"]
    assert "5m ago · 200" in lines["Alpha"] and "in 2h" in lines["Alpha"]
    assert "75%" in lines["Alpha"] and "1.0" in lines["Alpha"]
    assert {"config", "imported", "state"} <= set(lines)  # the origin under each name
    assert "redirects to https://alpha.example/new-feed" in text
    assert "config overrides imported https://old-beta.example/rss" in text


def test_untrusted_names_are_not_markup(db: Path, store: Store) -> None:
    store.save_imported_sources([ImportedSource("[bold]x[/bold]", "https://x.example/feed")])
    text = _render(_settings(db), store)
    assert "[bold]x[/bold]" in text


def test_command_prints_the_table(db: Path, store: Store, tmp_path: Path) -> None:
    _seed(store)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage:\n  url: sqlite:///{db}\nsources:\n"
        "  - name: Beta\n    url: https://beta.example/rss\n"
    )
    app = typer.Typer()
    app.callback(invoke_without_command=True)(sources_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["--config", str(config)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "erroring" in result.output and "Delta" in result.output
    missing = CliRunner().invoke(app, ["--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
