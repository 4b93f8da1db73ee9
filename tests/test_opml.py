"""OPML parsing/rendering, import into a real SQLite store, the config-wins rule, export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aggregator.errors import ParseError
from aggregator.export.opml import OpmlFeed, parse_opml, render_opml
from aggregator.settings import Settings, SourceSettings
from aggregator.sources import (
    effective_settings,
    effective_sources,
    export_opml,
    export_opml_command,
    import_opml,
    import_opml_command,
)
from aggregator.store import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>subs</title></head>
  <body>
    <outline text="Tech">
      <outline text="AI">
        <outline type="rss" text="AI Blog" xmlUrl="https://ai.example/feed" htmlUrl="https://ai.example/"/>
      </outline>
      <outline type="rss" title="Gadgets" text="ignored" xmlUrl="http://gadgets.example/rss"/>
    </outline>
    <outline type="rss" text="Top level" xmlUrl="https://top.example/atom.xml"/>
    <outline type="rss" text="Tagged" category="/Science/Space" xmlUrl="https://space.example/rss"/>
    <outline type="rss" text="Bad scheme" xmlUrl="ftp://files.example/feed"/>
    <outline type="rss" text="No feed URL" htmlUrl="https://nofeed.example/"/>
    <outline type="rss" text="Relative" xmlUrl="/feed.xml"/>
    <outline type="rss" text="AI Blog" xmlUrl="https://dupe.example/feed"/>
  </body>
</opml>
"""


def settings_with(*sources: SourceSettings, db: Path) -> Settings:
    return Settings(storage={"url": f"sqlite:///{db}"}, sources=sources)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as opened:
        yield opened


def test_parse_nested_outlines_and_categories() -> None:
    document = parse_opml(NESTED)
    feeds = {feed.name: feed for feed in document.feeds}
    assert set(feeds) == {"AI Blog", "Gadgets", "Top level", "Tagged"}
    assert feeds["AI Blog"] == OpmlFeed("AI Blog", "https://ai.example/feed", "AI")
    assert feeds["Gadgets"].category == "Tech"
    assert feeds["Top level"].category == "news"
    assert feeds["Tagged"].category == "Space"


def test_invalid_outlines_are_reported_not_fatal() -> None:
    problems = [str(problem) for problem in parse_opml(NESTED).problems]
    assert len(problems) == 4
    assert any(
        '"Bad scheme"' in p and "'ftp://files.example/feed' is not an http(s) URL" in p
        for p in problems
    )
    assert any('"No feed URL"' in p and "no xmlUrl" in p for p in problems)
    assert any('"Relative"' in p and "not an http(s) URL" in p for p in problems)
    assert any("duplicate name" in p and "outline #3" in p for p in problems)
    assert all("line " in p for p in problems)


def test_names_and_urls_lose_controls_and_bidi_overrides() -> None:
    # XML allows DEL, C1 controls and bidi overrides: an imported source's name or
    # category carried them into the tables; its URL keeps them, percent-encoded.
    outline = (
        '<outline text="Ev&#x202e;il&#x7f;" xmlUrl="https://a.example/f&#x202e;d x" '
        'category="Wo&#x85;rld"/>'
    )
    data = f'<opml version="2.0"><body>{outline}</body></opml>'.encode()
    (feed,) = parse_opml(data).feeds
    assert (feed.name, feed.category) == ("Evil", "Wo rld")
    assert feed.url == "https://a.example/f%E2%80%AEd%20x"


@pytest.mark.parametrize(
    "data",
    [b"not xml at all", b"<rss version='2.0'><channel/></rss>", b"<opml version='2.0'/>"],
)
def test_not_opml_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_opml(data, origin="x.opml")


@pytest.mark.parametrize(
    ("declaration", "use"),
    [
        ('<!ENTITY xxe SYSTEM "file://{secret}">', "&xxe;"),
        ('<!ENTITY a "AAAAAAAAAA"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">', "&b;"),
    ],
)
def test_entity_declarations_are_refused(tmp_path: Path, declaration: str, use: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = f"""<?xml version="1.0"?>
<!DOCTYPE opml [{declaration.format(secret=secret)}]>
<opml version="2.0"><head><title>{use}</title></head><body>
<outline type="rss" text="X" xmlUrl="https://x.example/feed"/>
</body></opml>""".encode()
    with pytest.raises(ParseError) as raised:
        parse_opml(data)
    assert "TOP-SECRET" not in str(raised.value)
    assert "entity declarations are not allowed" in str(raised.value)


def test_render_is_opml_2_and_reparses_identically() -> None:
    feeds = [
        OpmlFeed("A & B <news>", "https://a.example/feed?x=1&y=2", "World", "article", True),
        OpmlFeed("Clips", "https://v.example/rss", "Video", "video", False),
        OpmlFeed("C", "https://c.example/feed", "World"),
    ]
    data = render_opml(feeds, now=NOW)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<opml")
    assert b'version="2.0"' in data and b"Sun, 01 Mar 2026 12:00:00 GMT" in data
    reparsed = parse_opml(data)
    assert reparsed.problems == ()
    assert sorted(reparsed.feeds, key=lambda f: f.name) == sorted(feeds, key=lambda f: f.name)


def test_round_trip_through_the_store(tmp_path: Path, store: Store) -> None:
    settings = settings_with(db=tmp_path / "a.db")
    first = import_opml(settings, store, NESTED)
    assert (first.counts.added, first.counts.updated) == (4, 0)
    exported = export_opml(settings, store, NOW)
    with Store(f"sqlite:///{tmp_path / 'b.db'}") as other:
        again = import_opml(settings, other, exported)
        assert again.problems == ()
        assert other.imported_sources() == store.imported_sources()
    repeat = import_opml(settings, store, exported)
    assert (repeat.counts.added, repeat.counts.updated, repeat.counts.unchanged) == (0, 0, 4)


def test_config_wins_for_names_and_urls_it_defines(tmp_path: Path, store: Store) -> None:
    mine = SourceSettings(name="AI Blog", url="https://mine.example/feed", category="Mine")
    same_url = SourceSettings(name="Top", url="https://top.example/atom.xml")
    settings = settings_with(mine, same_url, db=tmp_path / "a.db")
    report = import_opml(settings, store, NESTED)
    assert report.shadowed == ("AI Blog",)
    sources = effective_sources(settings, store)
    assert [s.name for s in sources] == ["AI Blog", "Top", "Gadgets", "Tagged"]
    assert sources[0] == mine
    assert effective_settings(settings, store).source("Gadgets") is not None
    assert b"https://mine.example/feed" in export_opml(settings, store, NOW)
    assert b"https://ai.example/feed" not in export_opml(settings, store, NOW)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("import-opml")(import_opml_command)
    app.command("export-opml")(export_opml_command)
    return app


def test_commands_import_then_export_atomically(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  url: sqlite:///{tmp_path / 'c.db'}\n")
    opml = tmp_path / "subs.opml"
    opml.write_bytes(NESTED)
    runner = CliRunner()
    result = runner.invoke(_cli(), ["import-opml", str(opml), "--config", str(config)])
    assert result.exit_code == 3, result.output
    assert "4 new" in result.output and "is not an http(s) URL" in result.output
    out = tmp_path / "out.opml"
    result = runner.invoke(_cli(), ["export-opml", "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert {f.name for f in parse_opml(out.read_bytes()).feeds} == {
        "AI Blog",
        "Gadgets",
        "Top level",
        "Tagged",
    }
    result = runner.invoke(_cli(), ["export-opml", "--config", str(config)])
    assert result.exit_code == 0 and "<opml" in result.output
    bad = runner.invoke(_cli(), ["import-opml", str(tmp_path / "missing.opml"), "-c", str(config)])
    assert bad.exit_code == 2
