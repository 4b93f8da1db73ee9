"""Exports: a Record becomes public files, and public files become Records again.

    fields.py    Record ⇄ public dict (the seed's keys, in the seed's order)
    markdown.py  the seed's Markdown + YAML front matter, byte for byte
    jsonl.py     one JSON record per line
    seal.py      `secured`: AES-GCM sealed provenance and per-field hashes
    atomic.py    atomic replaces (whole or streamed), create-once files, one flush per batch
    files.py     safe file names, the incremental ExportWriter / MarkdownTree, the manifest
    entries.py   related entries rendered once for every format (the export tree's memo)

The package namespace re-exports the public functions of those modules, imported when
first used: a crawl that changed nothing never loads the writers (lxml, cryptography).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.export.fields import public_to_record, record_to_public
    from aggregator.export.files import ExportStats, ExportWriter, atomic_write, safe_filename
    from aggregator.export.jsonl import iter_jsonl, record_to_json_line
    from aggregator.export.markdown import parse_markdown, render_markdown
    from aggregator.export.seal import (
        VerifyResult,
        instance_id,
        load_or_create_key,
        public_hash,
        seal_record,
        verify_record,
    )

_HOME = {
    "ExportStats": "files",
    "ExportWriter": "files",
    "VerifyResult": "seal",
    "atomic_write": "files",
    "instance_id": "seal",
    "iter_jsonl": "jsonl",
    "load_or_create_key": "seal",
    "parse_markdown": "markdown",
    "public_hash": "seal",
    "public_to_record": "fields",
    "record_to_json_line": "jsonl",
    "record_to_public": "fields",
    "render_markdown": "markdown",
    "safe_filename": "files",
    "seal_record": "seal",
    "verify_record": "seal",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"aggregator.export.{_HOME[name]}"), name)


__all__ = [
    "ExportStats",
    "ExportWriter",
    "VerifyResult",
    "atomic_write",
    "instance_id",
    "iter_jsonl",
    "load_or_create_key",
    "parse_markdown",
    "public_hash",
    "public_to_record",
    "record_to_json_line",
    "record_to_public",
    "render_markdown",
    "safe_filename",
    "seal_record",
    "verify_record",
]
