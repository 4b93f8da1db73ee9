"""Writing export files safely: safe names and incremental Markdown trees.

    safe_filename(record)   YYYY-MM-DD-<slug>-<8 hex of sha256(webUrl)>.md, never a path
    ExportWriter(out_dir)   rewrites only changed files; `.manifest.json` maps webUrl → file
                            so a renamed record (new date/title) removes its old file
    MarkdownTree            one streamed Markdown run: `add` record by record, then `finish`

The atomic writes themselves (`atomic_write`, `AtomicStream`, `create_new_file`,
`sync_directory`) live in `atomic.py` and are re-exported here.

File names never come from untrusted input except through `safe_filename`; names read
back from the manifest are checked against the same pattern before they are touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aggregator.dates import to_utc
from aggregator.errors import ExportError
from aggregator.export.atomic import (
    AtomicStream,
    atomic_write,
    create_new_file,
    remove_stale_temps,
    sync_directory,
)
from aggregator.export.jsonl import record_to_json_line
from aggregator.export.manifest import MANIFEST, STORE_MARK, StoreMarker, store_mark_text
from aggregator.export.markdown import render_markdown
from aggregator.models import Record

log = logging.getLogger(__name__)

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


def write_markdown_file(out_dir: Path, record: Record, text: str | None = None) -> tuple[str, bool]:
    """Write `record`'s Markdown file under `out_dir` unless its bytes are already there;
    its file name, and whether it was written. `text` is the rendered file when at hand."""
    name = safe_filename(record)
    rendered = render_markdown(record) if text is None else text
    return name, atomic_write(out_dir / name, rendered, durable=False)


@dataclass(frozen=True, slots=True)
class ExportStats:
    """What one export run did to the files."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0


class MarkdownTree:
    """One incremental Markdown export run: `add` records one at a time, then `finish`.

    Each file is written as its record arrives (only when its bytes changed), so nothing
    but the manifest and this run's file names is held. Old files of records whose name
    changed are removed at `finish`, unless another record of this run claimed the name.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._manifest = load_manifest(out_dir)  # updated in place as records arrive
        self._urls: set[str] = set()  # web URLs of this run's records
        self._claimed: set[str] = set()  # their file names
        self._written: set[str] = set()  # web URLs whose file was (re)written
        self._replaced: list[str] = []  # old names of records whose name changed
        out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, record: Record, text: str | None = None) -> None:
        """Write `record`'s file; `text` is its rendered Markdown when already at hand."""
        name, written = write_markdown_file(self.out_dir, record, text)
        self.note(record.web_url, name, written)

    def note(self, url: str, name: str, written: bool) -> None:
        """Count a file `write_markdown_file` wrote (or left alone) for the record at `url`."""
        if written:
            self._written.add(url)
        previous = self._manifest.get(url)
        if previous is not None and previous != name:
            self._replaced.append(previous)
        self._manifest[url] = name
        self._urls.add(url)
        self._claimed.add(name)

    def finish(self) -> ExportStats:
        """Remove replaced files, flush everything to disk once, save the manifest."""
        stale = set(self._replaced) - self._claimed
        removed = sum(unlink_export(self.out_dir, name) for name in stale)
        written = len(self._written)
        if written or removed:
            sync_directory(self.out_dir)
        remove_stale_temps(self.out_dir)
        save_manifest(self.out_dir, self._manifest)
        return ExportStats(written, len(self._urls) - written, removed)


class ExportWriter:
    """Incrementally maintains a directory of Markdown records (and JSON Lines exports)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def markdown_tree(self) -> MarkdownTree:
        """Start an incremental Markdown run over this directory (see `MarkdownTree`)."""
        return MarkdownTree(self.out_dir)

    def write_markdown(self, records: Iterable[Record]) -> ExportStats:
        """Write each record to its safe file; unchanged files are left alone and a record
        whose file name changed (new date or title) has its old file removed."""
        tree = self.markdown_tree()
        for record in records:
            tree.add(record)
        return tree.finish()

    def jsonl_stream(self, name: str = "records.jsonl") -> AtomicStream:
        """An `AtomicStream` replacing `name` in this directory (a plain file name)."""
        if not _SAFE_PLAIN_NAME.fullmatch(name) or name in (MANIFEST, STORE_MARK):
            raise ExportError(name, "not a plain file name")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return AtomicStream(self.out_dir / name)

    def write_jsonl(self, records: Iterable[Record], name: str = "records.jsonl") -> bool:
        """Write all records to `name` as one atomic replace; False when it was unchanged."""
        with self.jsonl_stream(name) as stream:
            for record in records:
                stream.write(json_line_bytes(record_to_json_line(record)))
            return stream.commit()

    def remove(self, web_urls: Iterable[str]) -> ExportStats:
        """Delete the Markdown files of these records and forget them in the manifest."""
        manifest = load_manifest(self.out_dir)
        removed = 0
        for url in web_urls:
            name = manifest.pop(url, None)
            if name is not None:
                removed += unlink_export(self.out_dir, name)
        save_manifest(self.out_dir, manifest)
        return ExportStats(removed=removed)


def json_line_bytes(line: str) -> bytes:
    """One JSON line as the bytes of a JSONL file (UTF-8, newline-terminated)."""
    return (line + "\n").encode("utf-8")


def unlink_export(out_dir: Path, name: str) -> int:
    """Remove `out_dir/name` (a checked plain name); 1 if it existed, else 0."""
    try:
        (out_dir / name).unlink()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise ExportError(str(out_dir / name), f"cannot remove: {exc.strerror}") from exc
    return 1


def load_manifest(out_dir: Path) -> dict[str, str]:
    """The manifest's webUrl → file name map; unsafe names are dropped with a warning."""
    path = out_dir / MANIFEST
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


def write_store_mark(out_dir: Path, marker: StoreMarker, fingerprint: str) -> None:
    """Note, once an export is complete, the store's change marker read before it began
    and the fingerprint of the settings it followed (`manifest.export_is_stale` compares
    them with the store's and the settings' now)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / STORE_MARK, store_mark_text(marker, fingerprint))


def save_manifest(out_dir: Path, manifest: dict[str, str]) -> None:
    """Write the manifest (durably); nothing when it is empty and there was none.

    The bytes are those of ``json.dumps({"version": 1, "files": sorted}, indent=1)`` plus
    a newline, streamed entry by entry so a large manifest is never one big string.
    """
    if not manifest and not (out_dir / MANIFEST).exists():
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with AtomicStream(out_dir / MANIFEST) as stream:
        stream.write(b'{\n "version": 1,\n "files": {')
        separator = b"\n  "
        for url in sorted(manifest):
            entry = f"{json.dumps(url)}: {json.dumps(manifest[url])}"
            stream.write(separator + entry.encode("ascii"))
            separator = b",\n  "
        stream.write(b"\n }\n}\n" if manifest else b"}\n}\n")
        stream.commit()


__all__ = [
    "MANIFEST",
    "STORE_MARK",
    "AtomicStream",
    "ExportStats",
    "ExportWriter",
    "MarkdownTree",
    "atomic_write",
    "create_new_file",
    "json_line_bytes",
    "load_manifest",
    "safe_filename",
    "save_manifest",
    "slugify",
    "sync_directory",
    "unlink_export",
    "write_store_mark",
]
