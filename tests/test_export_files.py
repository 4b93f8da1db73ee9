"""Export files: safe names, atomic writes, and the incremental Markdown writer."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.errors import ExportError
from aggregator.export import atomic
from aggregator.export.files import (
    MANIFEST,
    ExportStats,
    ExportWriter,
    atomic_write,
    create_new_file,
    safe_filename,
    slugify,
    sync_directory,
)
from aggregator.export.jsonl import iter_jsonl
from aggregator.export.markdown import parse_markdown
from aggregator.models import Provider, Record

SAFE_NAME = re.compile(r"(\d{4}-\d{2}-\d{2}|undated)-[a-z0-9]+(-[a-z0-9]+)*-[0-9a-f]{8}\.md")
DAY = datetime(2020, 2, 2, 23, 30, tzinfo=UTC)


def make_record(
    title: str, url: str = "https://news.example/a", published: datetime | None = DAY
) -> Record:
    return Record(
        title=title, web_url=url, provider=Provider("News", "news.example"), published=published
    )


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("City police eye facial recognition", "city-police-eye-facial-recognition"),
        ("../../etc/passwd", "etc-passwd"),
        ("/", "untitled"),
        ("..", "untitled"),
        (".", "untitled"),
        ("", "untitled"),
        ("Ça coûte 5 €, naïve café", "ca-coute-5-naive-cafe"),
        ("東京ニュース", "untitled"),
        ("C:\\Windows\\system32\x00NUL", "c-windows-system32-nul"),
        ("a" * 59 + " bcd", "a" * 59),
        ("x" * 500, "x" * 60),
    ],
)
def test_safe_filename_table(title: str, slug: str) -> None:
    name = safe_filename(make_record(title))
    assert name.startswith(f"2020-02-02-{slug}-") and SAFE_NAME.fullmatch(name)
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert slugify(title) == slug


def test_safe_filename_uses_the_utc_day() -> None:
    local = datetime(2020, 2, 3, 1, 30, tzinfo=timezone(timedelta(hours=5)))
    assert safe_filename(make_record("A", published=local)).startswith("2020-02-02-a-")


def test_safe_filename_is_undated_and_url_specific() -> None:
    first = safe_filename(make_record("Same", published=None))
    second = safe_filename(make_record("Same", url="https://other.example/a", published=None))
    assert first.startswith("undated-same-") and first != second


def test_atomic_write_writes_then_skips_identical_content(tmp_path: Path) -> None:
    path = tmp_path / "out.md"
    assert atomic_write(path, "héllo\n") is True
    mtime = path.stat().st_mtime_ns
    assert atomic_write(path, "héllo\n".encode()) is False
    assert path.stat().st_mtime_ns == mtime
    assert atomic_write(path, b"changed") is True
    assert path.read_bytes() == b"changed"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"], "no temp files left"


def test_atomic_write_failure_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot write"):
        atomic_write(tmp_path / "missing-dir" / "out.md", "x")


def test_create_new_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert create_new_file(path, b"first") is True
    assert create_new_file(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_writer_is_incremental_across_runs(tmp_path: Path) -> None:
    writer = ExportWriter(tmp_path / "out")
    a, b = make_record("Alpha"), make_record("Beta", url="https://news.example/b")
    assert writer.write_markdown([a, b]) == ExportStats(written=2, unchanged=0, removed=0)
    assert writer.write_markdown([a, b]) == ExportStats(written=0, unchanged=2, removed=0)
    changed = dataclasses.replace(b, excerpt="new excerpt")
    assert writer.write_markdown([a, changed]) == ExportStats(written=1, unchanged=1, removed=0)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted([MANIFEST, safe_filename(a), safe_filename(b)])
    assert parse_markdown((tmp_path / "out" / safe_filename(b)).read_text()) == changed


def test_title_change_renames_and_removes_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    writer = ExportWriter(out)
    old = make_record("Old headline")
    writer.write_markdown([old])
    new = dataclasses.replace(old, title="New headline")
    assert ExportWriter(out).write_markdown([new]) == ExportStats(written=1, removed=1)
    assert not (out / safe_filename(old)).exists()
    assert (out / safe_filename(new)).exists()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == {old.web_url: safe_filename(new)}


def test_remove_deletes_files_and_manifest_entries(tmp_path: Path) -> None:
    writer = ExportWriter(tmp_path)
    a, b = make_record("Alpha"), make_record("Beta", url="https://news.example/b")
    writer.write_markdown([a, b])
    assert writer.remove([a.web_url, "https://never.example/"]) == ExportStats(removed=1)
    assert not (tmp_path / safe_filename(a)).exists()
    assert (tmp_path / safe_filename(b)).exists()
    assert list(json.loads((tmp_path / MANIFEST).read_text())["files"]) == [b.web_url]


def test_tampered_manifest_cannot_delete_outside_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim.md"
    victim.write_text("keep me")
    out.mkdir()
    record = make_record("Alpha")
    files = {record.web_url: "../victim.md", "https://x.example": "/etc/passwd"}
    (out / MANIFEST).write_text(json.dumps({"version": 1, "files": files}))
    writer = ExportWriter(out)
    assert writer.write_markdown([record]) == ExportStats(written=1)
    assert writer.remove(["https://x.example"]) == ExportStats()
    assert victim.read_text() == "keep me"


def test_corrupt_manifest_is_an_export_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{")
    with pytest.raises(ExportError, match="manifest"):
        ExportWriter(tmp_path).write_markdown([make_record("A")])


def test_write_jsonl_is_atomic_and_skips_unchanged(tmp_path: Path) -> None:
    writer = ExportWriter(tmp_path)
    records = [make_record("Alpha"), make_record("Beta", url="https://news.example/b")]
    assert writer.write_jsonl(records) is True
    assert writer.write_jsonl(records) is False
    assert list(iter_jsonl(tmp_path / "records.jsonl")) == records
    assert writer.write_jsonl(records[:1]) is True
    assert [p.name for p in tmp_path.iterdir()] == ["records.jsonl"]


@pytest.mark.parametrize("name", ["../x.jsonl", "/tmp/x", "..", ".", "", MANIFEST, "a/b"])
def test_write_jsonl_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ExportError, match="plain file name"):
        ExportWriter(tmp_path).write_jsonl([], name=name)


def _no_global_sync() -> None:
    raise AssertionError("os.sync flushes every filesystem; syncfs was expected")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_a_batch_is_flushed_on_its_own_filesystem_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a bulk export, one flush of the export's filesystem (syncfs), not `sync` of
    every disk on the machine."""
    assert atomic._syncfs() is not None  # glibc has had it since 2.14
    monkeypatch.setattr(os, "sync", _no_global_sync)
    atomic_write(tmp_path / "a.md", "text", durable=False)
    sync_directory(tmp_path)
    assert (tmp_path / "a.md").read_text() == "text"


def test_without_syncfs_a_batch_is_flushed_with_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    monkeypatch.setattr(atomic, "_syncfs", lambda: None)
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    sync_directory(tmp_path)
    assert synced == [True]


def test_a_failed_flush_is_an_export_error_naming_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_syncfs(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(atomic, "_syncfs", lambda: failing_syncfs)
    with pytest.raises(
        ExportError, match="cannot flush to disk: syncfs: Input/output error"
    ) as raised:
        sync_directory(tmp_path)
    assert str(tmp_path) in str(raised.value)
