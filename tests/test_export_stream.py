"""The streamed export path: one pass over the store feeds every format, page by page.

Covers `export_configured` end to end on a real SQLite store (every format, reruns that
change nothing, a changed record resealed and rewritten alone, a failed run that leaves no
temp file), the Core read path against the ORM-row path, `AtomicStream`, the deterministic
temp names and their sweep, the feed collector's window, and the seed's import → export
round trip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest

from aggregator.errors import ExportError
from aggregator.export.atomic import (
    STALE_TEMP_SECONDS,
    AtomicStream,
    atomic_write,
    remove_stale_temps,
    temp_path,
)
from aggregator.export.feeds import FeedCollector
from aggregator.export.files import MANIFEST, load_manifest, safe_filename, save_manifest
from aggregator.export.jsonl import iter_jsonl
from aggregator.export.markdown import parse_markdown
from aggregator.models import Image, Provider, Record, RelatedRecord
from aggregator.operations import (
    ExportRequest,
    export_configured,
    export_records,
    import_paths,
    verify_paths,
)
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store
from aggregator.store.queries import RecordFilter, iter_stored

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PUBLISHED = 7


def make_record(n: int, *, published: bool = True, topics: tuple[str, ...] = ("AI",)) -> Record:
    return Record(
        title=f"Story number {n}",
        web_url=f"https://news.example/story/{n}",
        provider=Provider("News", "news.example"),
        excerpt=f"What happened in story {n}.",
        published=T0 + timedelta(hours=n),
        quality=60,
        is_published=published,
        topics=topics,
        images=(Image(f"https://news.example/img/{n}.jpg", 800, 600, f"Picture {n}"),),
    )


def make_settings(tmp_path: Path) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "storage": {"url": f"sqlite:///{tmp_path / 'data' / 'a.db'}"},
            "export": {"dir": str(tmp_path / "export"), "feed_size": 3},
            "topics": [{"name": "AI", "keywords": ["story"]}, {"name": "Robots"}],
            "sources": [{"name": "s", "url": "https://news.example/feed"}],
        }
    )


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    settings = make_settings(tmp_path)
    records = [make_record(n, topics=("AI", "Robots") if n % 2 else ("AI",)) for n in range(7)]
    records += [make_record(n, published=False) for n in range(7, 9)]
    with Store(settings.storage.url) as store:
        store.upsert_records(records)
        yield settings, store


def temps(directory: Path) -> list[str]:
    return [path.name for path in directory.rglob("*.tmp")]


def test_one_pass_writes_every_format_newest_first(filled: tuple[Settings, Store]) -> None:
    settings, store = filled
    summaries = export_configured(settings, store)
    out = Path(settings.export.dir)
    assert summaries[0] == f"markdown → {out}: {PUBLISHED} written, 0 unchanged, 0 removed"
    assert summaries[1:] == [
        f"jsonl → {out / 'records.jsonl'}: written",
        "feeds: 9 written, 0 unchanged, 0 removed",
    ]
    newest_first = [f"https://news.example/story/{n}" for n in reversed(range(PUBLISHED))]
    assert [record.web_url for record in iter_jsonl(out / "records.jsonl")] == newest_first
    markdown = sorted(out.glob("*.md"))
    assert len(markdown) == PUBLISHED
    assert all(outcome.ok for outcome in verify_paths(settings, markdown))
    everything = json.loads((out / "feeds" / "all.json").read_text())
    assert [item["url"] for item in everything["items"]] == newest_first[:3]
    robots = json.loads((out / "feeds" / "topic-robots.json").read_text())
    assert [item["url"] for item in robots["items"]] == newest_first[1::2]
    assert temps(out) == []


def test_a_rerun_that_changes_nothing_writes_nothing(filled: tuple[Settings, Store]) -> None:
    settings, store = filled
    export_configured(settings, store)
    out = Path(settings.export.dir)
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    summaries = export_configured(settings, store)
    assert summaries == [
        f"markdown → {out}: 0 written, {PUBLISHED} unchanged, 0 removed",
        f"jsonl → {out / 'records.jsonl'}: unchanged",
        "feeds: 0 written, 9 unchanged, 0 removed",
    ]
    after = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    assert {p: t for p, t in after.items() if p.name != MANIFEST} == {
        p: t for p, t in before.items() if p.name != MANIFEST
    }


def test_a_changed_record_is_resealed_and_rewritten_alone(filled: tuple[Settings, Store]) -> None:
    settings, store = filled
    export_configured(settings, store)
    target = next(s for s in store.iter_records() if s.record.web_url.endswith("/3"))
    store.set_heat(target.id, 80)
    summaries = export_configured(settings, store)
    assert summaries[0].endswith(f": 1 written, {PUBLISHED - 1} unchanged, 0 removed")
    path = Path(settings.export.dir) / safe_filename(target.record)
    assert parse_markdown(path.read_text()).heat == 80
    assert all(outcome.ok for outcome in verify_paths(settings, [path]))
    resealed = store.get_records([target.id])[target.id].record.secured
    assert resealed and resealed != target.record.secured


def test_a_failed_run_leaves_no_temp_file_and_the_old_jsonl(
    filled: tuple[Settings, Store],
) -> None:
    settings, store = filled
    export_configured(settings, store)
    out = Path(settings.export.dir)
    jsonl = (out / "records.jsonl").read_bytes()
    target = next(s for s in store.iter_records() if s.record.web_url.endswith("/2"))
    store.set_heat(target.id, 90)
    blocker = out / safe_filename(target.record)
    blocker.unlink()
    blocker.mkdir()  # the record's file cannot be replaced
    with pytest.raises(ExportError):
        export_configured(settings, store)
    assert temps(out) == []
    assert (out / "records.jsonl").read_bytes() == jsonl


def test_core_pages_equal_the_orm_row_path(filled: tuple[Settings, Store]) -> None:
    _settings, store = filled
    imported = Record(
        title="Imported",
        web_url="https://other.example/imported",
        provider=Provider("Other", "other.example"),
        published=T0 - timedelta(days=1),
        related=(
            RelatedRecord(
                title="Snapshot",
                excerpt="",
                published=None,
                web_url="https://x.example/s",
                amp_web_url="",
                cdn_amp_web_url="",
                type="article",
                provider=Provider("X", "x.example"),
                quality=50,
            ),
        ),
    )
    undated = Record("Undated", "https://news.example/undated", Provider("N", "n.example"))
    store.upsert_records([imported, undated])
    ids = [stored.id for stored in store.iter_records()]
    store.set_related(ids[0], ids[1:4])
    store.set_related(ids[5], [ids[0]])
    paged = list(iter_stored(store._engine, RecordFilter(), page_size=3))
    assert [stored.id for stored in paged] == ids
    assert {stored.id: stored for stored in paged} == store.get_records(ids)
    related = {stored.id: stored.record.related for stored in paged}
    assert [entry.web_url for entry in related[ids[0]]] == [
        stored.record.web_url for stored in paged[1:4]
    ]
    assert related[ids[0]][0].images == paged[1].record.images
    snapshot = next(s for s in paged if s.record.web_url == imported.web_url).record.related
    assert snapshot == imported.related


def test_atomic_stream_replaces_only_when_the_bytes_differ(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"one\ntwo\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    for pieces, changed in [
        ([b"one\n", b"two\n"], False),
        ([b"one\n"], True),
        ([b"one\n", b"two\n", b"three\n"], True),
        ([b"one\n", b"TWO\n", b"three\n"], True),
    ]:
        with AtomicStream(path) as stream:
            for piece in pieces:
                stream.write(piece)
            assert stream.commit() is changed
        assert path.read_bytes() == b"".join(pieces)
        assert (path.stat().st_ino != inode) is changed
        inode = path.stat().st_ino
        assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]


def test_atomic_stream_left_by_an_exception_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"old\n")
    with pytest.raises(RuntimeError), AtomicStream(path) as stream:
        stream.write(b"new and half")
        raise RuntimeError("killed mid-way")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]


def test_a_temp_left_by_a_dead_process_with_our_pid_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    leftover = temp_path(path)
    leftover.write_bytes(b"half-writ")
    assert atomic_write(path, "whole\n") is True
    assert path.read_text() == "whole\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md"]


def test_stale_temps_are_swept_and_fresh_ones_kept(tmp_path: Path) -> None:
    old = tmp_path / ".2025-01-01-a-0123abcd.md.4242-4243.tmp"
    fresh = tmp_path / ".records.jsonl.4244-4245.tmp"
    other = tmp_path / ".hidden.tmp"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    now = old.stat().st_mtime + STALE_TEMP_SECONDS + 10
    os.utime(fresh, (now - 5, now - 5))
    assert remove_stale_temps(tmp_path, now=now) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name])


def test_feed_collector_looks_at_the_window_only() -> None:
    records = [make_record(n, topics=("AI",) if n % 3 else ("Robots",)) for n in range(10)]
    collector = FeedCollector(["AI", "Robots", "Empty"], size=3, window=5)
    for record in records:
        collector.offer(record)
    chosen = {feed.name: [r.web_url for r in feed.records] for _, feed in collector.feed_sets("t")}
    urls = [record.web_url for record in records]
    assert chosen == {
        "all": urls[:3],
        "AI": [urls[1], urls[2], urls[4]],
        "Robots": [urls[0], urls[3]],
        "Empty": [],
    }


def test_seed_import_then_export_is_identical_but_for_the_seal(
    seed_file: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    out = tmp_path / "md"
    with Store(settings.storage.url) as store:
        import_paths(settings, store, [seed_file])
        export_records(settings, store, ExportRequest(format="md", out=str(out)), stdout=StringIO())
    (exported,) = sorted(out.glob("*.md"))
    seed_lines = seed_file.read_text(encoding="utf-8").split("\n")
    lines = exported.read_text(encoding="utf-8").split("\n")
    assert len(lines) == len(seed_lines)
    differing = [new for new, old in zip(lines, seed_lines, strict=True) if new != old]
    assert len(differing) == 1 and differing[0].startswith('secured: "')


def test_the_streamed_manifest_has_the_json_dumps_bytes(tmp_path: Path) -> None:
    manifest = {
        'https://b.example/ü"quoted\u2028': "2025-01-01-b-0123abcd.md",
        "https://a.example/\ud800": "undated-a-89abcdef.md",
    }
    for files in (manifest, {}):
        (tmp_path / MANIFEST).write_text("stale")
        save_manifest(tmp_path, files)
        expected = json.dumps({"version": 1, "files": dict(sorted(files.items()))}, indent=1)
        assert (tmp_path / MANIFEST).read_text() == expected + "\n"
        assert load_manifest(tmp_path) == files


def test_extended_jsonl_is_streamed_to_its_file_and_kept_when_unchanged(
    filled: tuple[Settings, Store],
) -> None:
    settings, store = filled
    out = Path(settings.export.dir)
    request = ExportRequest(format="jsonl", out=str(out), extended=True)
    path = out / "records.extended.jsonl"
    out.mkdir(parents=True)
    assert export_records(settings, store, request, stdout=StringIO()).endswith(": written")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == PUBLISHED + 2
    assert all("story" in line and "qualityReasons" in line for line in lines)
    assert export_records(settings, store, request, stdout=StringIO()).endswith(": unchanged")
    assert temps(out) == []
