"""Writing export files safely: atomic replaces, safe names, incremental Markdown trees.

    safe_filename(record)   YYYY-MM-DD-<slug>-<8 hex of sha256(webUrl)>.md, never a path
    atomic_write(path, …)   temp file + fsync + os.replace + dir fsync; skips identical content
    ExportWriter(out_dir)   rewrites only changed files; `.manifest.json` maps webUrl → file
                            so a renamed record (new date/title) removes its old file

File names never come from untrusted input except through `safe_filename`; names read
back from the manifest are checked against the same pattern before they are touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aggregator.dates import to_utc
from aggregator.errors import ExportError
from aggregator.export.jsonl import records_to_jsonl
from aggregator.export.markdown import render_markdown
from aggregator.models import Record

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"
SLUG_MAX = 60
_SAFE_MD_NAME = re.compile(r"(?:\d{4}-\d{2}-\d{2}|undated)-[a-z0-9-]+-[0-9a-f]{8}\.md")
_SAFE_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = SLUG_MAX) -> str:
    """Lowercase ASCII ``[a-z0-9-]`` slug of `text`, at most `max_length`; "untitled" if empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or "untitled"


def safe_filename(record: Record) -> str:
    """``YYYY-MM-DD-<slug>-<8 hex>.md`` (``undated-…`` without a date); always a plain name."""
    day = "undated" if record.published is None else f"{to_utc(record.published):%Y-%m-%d}"
    digest = hashlib.sha256(record.web_url.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{day}-{slugify(record.title)}-{digest}.md"


def sync_directory(directory: Path) -> None:
    """Flush a directory's written files and entries to disk (after bulk non-durable writes)."""
    if hasattr(os, "sync"):
        os.sync()  # one flush for the whole batch instead of one fsync per file
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, name: str, data: bytes, mode: int, durable: bool = True) -> Path:
    """Write `data` to a temp file in `directory` (fsynced when `durable`); return its path."""
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if os.name == "posix":
                os.fchmod(handle.fileno(), mode)
            if durable:
                os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def atomic_write(
    path: Path, data: bytes | str, mode: int | None = None, *, durable: bool = True
) -> bool:
    """Replace `path` with `data` atomically; False (nothing written) when already identical.

    The file keeps its current mode, else gets `mode` (default 0644). Raises ExportError.
    Readers and crashes of this process never see a partial file either way; `durable`
    also fsyncs the data and the directory so the new content survives a power cut. Bulk
    writers pass ``durable=False`` and call `sync_directory` once at the end.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise ExportError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if current == payload:
        return False
    if mode is None:
        mode = 0o644 if current is None else path.stat().st_mode & 0o7777
    try:
        temp = _write_temp(path.parent, path.name, payload, mode, durable)
        try:
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if durable:
            _fsync_dir(path.parent)
    except OSError as exc:
        raise ExportError(str(path), f"cannot write: {exc.strerror or exc}") from exc
    return True


def create_new_file(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` with `data` and `mode` atomically; never overwrite.

    Returns False when the file already exists (another process won the race); readers
    never see a partial file because it is written under a temp name, then hard-linked.
    """
    temp = _write_temp(path.parent, path.name, data, mode)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


@dataclass(frozen=True, slots=True)
class ExportStats:
    """What one export run did to the files."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0


class ExportWriter:
    """Incrementally maintains a directory of Markdown records (and JSON Lines exports)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def write_markdown(self, records: Iterable[Record]) -> ExportStats:
        """Write each record to its safe file; unchanged files are left alone and a record
        whose file name changed (new date or title) has its old file removed."""
        by_url = {record.web_url: record for record in records}
        manifest = self._load_manifest()
        claimed = {safe_filename(record) for record in by_url.values()}
        written = unchanged = removed = 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for url, record in by_url.items():
            name = safe_filename(record)
            if atomic_write(self.out_dir / name, render_markdown(record), durable=False):
                written += 1
            else:
                unchanged += 1
            old = manifest.get(url)
            if old is not None and old != name and old not in claimed:
                removed += self._unlink(old)
            manifest[url] = name
        if written or removed:
            sync_directory(self.out_dir)
        self._save_manifest(manifest)
        return ExportStats(written, unchanged, removed)

    def write_jsonl(self, records: Iterable[Record], name: str = "records.jsonl") -> bool:
        """Write all records to `name` as one atomic replace; False when it was unchanged."""
        if not _SAFE_PLAIN_NAME.fullmatch(name) or name == MANIFEST:
            raise ExportError(name, "not a plain file name")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.out_dir / name, records_to_jsonl(records))

    def remove(self, web_urls: Iterable[str]) -> ExportStats:
        """Delete the Markdown files of these records and forget them in the manifest."""
        manifest = self._load_manifest()
        removed = 0
        for url in web_urls:
            name = manifest.pop(url, None)
            if name is not None:
                removed += self._unlink(name)
        self._save_manifest(manifest)
        return ExportStats(removed=removed)

    def _unlink(self, name: str) -> int:
        try:
            (self.out_dir / name).unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise ExportError(str(self.out_dir / name), f"cannot remove: {exc.strerror}") from exc
        return 1

    def _load_manifest(self) -> dict[str, str]:
        path = self.out_dir / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ExportError(str(path), f"unreadable manifest: {exc}") from exc
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            raise ExportError(str(path), "manifest has no 'files' mapping")
        manifest = {}
        for url, name in files.items():
            if isinstance(name, str) and _SAFE_MD_NAME.fullmatch(name):
                manifest[url] = name
            else:
                log.warning("ignoring unsafe manifest entry for %r", url)
        return manifest

    def _save_manifest(self, manifest: dict[str, str]) -> None:
        if not manifest and not (self.out_dir / MANIFEST).exists():
            return
        text = json.dumps({"version": 1, "files": dict(sorted(manifest.items()))}, indent=1)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out_dir / MANIFEST, text + "\n")
