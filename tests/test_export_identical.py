"""`export_configured` writes exactly the bytes of the plain per-record export path.

The reference is the general path every other export command uses: `Store.iter_records`
(full records), `_sealed` (seal check and renewal), `ExportWriter.write_markdown` /
`write_jsonl` (`render_markdown`, `record_to_json_line`) and `write_feeds`. The store holds
records with every kind of child data: several topics (one not configured), images with and
without size and title, related entries linked to records on the same page, on other pages
and unpublished, imported snapshot entries, quality reasons, provenance, undated records,
ties on the publication time, and text that needs escaping. Pages are a few records long so
the paging and the reuse of related entries across pages are exercised. Seal nonces are
fixed, so a cold export (nothing sealed yet) is deterministic too; that holds in this
process only, so the export runs without helper processes here (tests/test_export_pages.py
compares the export with helpers to the same reference).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from aggregator.dates import utc_now
from aggregator.export import entries, seal
from aggregator.export.feeds import write_feeds
from aggregator.export.files import ExportWriter
from aggregator.export.manifest import STORE_MARK, export_fingerprint, store_mark_text
from aggregator.models import Image, Provenance, Provider, QualityReason, Record, RelatedRecord
from aggregator.operations import _sealed, export_configured, verify_paths
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store, export_read

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
COUNT = 30
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes
IMAGE_SETS = (
    (),
    (Image("https://news.example/a.jpg", 800, 600, "A picture"),),
    (Image("https://news.example/b.jpg", None, 300, None), Image("https://news.example/c.png")),
    (Image("https://news.example/d.jpg", 640, None, 'Quoted "title"'),),
)
TOPIC_SETS = (("AI",), ("AI", "Robots"), (), ("Robots", "Unconfigured"))
TITLES = ("Plain story", 'Quote "marks", colon: yes', "Line\nbreak and \u2028 and café", "null")


def make_record(n: int) -> Record:
    return Record(
        title=f"{TITLES[n % len(TITLES)]} {n}",
        web_url=f"https://news.example/story/{n}",
        provider=Provider(f"News {n % 3}", f"news{n % 3}.example"),
        category="news" if n % 5 else "opinion",
        excerpt=f"What happened in story {n}: #{n} & more.",
        published=None if n % 11 == 5 else T0 + timedelta(hours=n // 3),
        amp_web_url=f"https://news.example/amp/{n}" if n % 2 else "",
        quality=40 + n,
        heat=n % 4 - 1,
        is_published=n % 9 != 8,
        topics=TOPIC_SETS[n % len(TOPIC_SETS)],
        images=IMAGE_SETS[n % len(IMAGE_SETS)],
        provenance=Provenance(
            source_name="s",
            feed_url="https://news.example/feed",
            guid=f"guid-{n}",
            fetched_at=T0 + timedelta(days=1),
            entry_hash=f"h{n}",
            categories=("Tech", f"c{n}"),
        ),
        text=f"The body of story {n}.",
        quality_reasons=(QualityReason("length", 10, "long enough"),),
    )


def imported_record() -> Record:
    entry = RelatedRecord(
        title="Snapshot entry",
        excerpt="Only imported",
        published=T0 - timedelta(days=2),
        web_url="https://elsewhere.example/s",
        amp_web_url="",
        cdn_amp_web_url="",
        type="article",
        provider=Provider("Elsewhere", "elsewhere.example"),
        quality=55,
        images=(Image("https://elsewhere.example/s.jpg", 10, 20),),
    )
    return Record(
        title="Imported with a snapshot",
        web_url="https://news.example/imported",
        provider=Provider("News 0", "news0.example"),
        published=T0 + timedelta(hours=4),
        is_published=True,
        related=(entry, replace(entry, web_url="https://elsewhere.example/t", published=None)),
    )


def make_settings(tmp_path: Path, name: str) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "storage": {"url": f"sqlite:///{tmp_path / name / 'a.db'}"},
            "export": {"dir": str(tmp_path / name / "export"), "feed_size": 5},
            "fetch": {"parse_workers": 1},  # one process: its fixed seal nonces (see above)
            "topics": [{"name": "AI"}, {"name": "Robots"}],
            "sources": [{"name": "s", "url": "https://news.example/feed"}],
        }
    )


def fill(store: Store) -> None:
    store.upsert_records([make_record(n) for n in range(COUNT)] + [imported_record()])
    ids = sorted(stored.id for stored in store.iter_records())
    for index, record_id in enumerate(ids):
        targets = [ids[(index + step) % len(ids)] for step in (1, -1, 7, 13, 8)]
        store.set_related(record_id, targets[: index % 6])


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, ...]]:
    """Two settings whose stores hold the same records: the reference's and the export's."""
    monkeypatch.setenv(seal.KEY_ENV, KEY)
    monkeypatch.setattr(seal, "secrets", SimpleNamespace(token_bytes=bytes))  # fixed nonces
    monkeypatch.setattr(export_read, "PAGE_SIZE", 4)
    monkeypatch.setattr(export_read, "REMEMBERED", 3)
    monkeypatch.setattr(entries, "MEMO_SIZE", 2)
    reference, optimised = make_settings(tmp_path, "ref"), make_settings(tmp_path, "opt")
    with Store(reference.storage.url) as store:
        fill(store)
    (tmp_path / "opt").mkdir()
    shutil.copyfile(tmp_path / "ref" / "a.db", tmp_path / "opt" / "a.db")
    yield reference, optimised


def reference_export(settings: Settings, store: Store) -> None:
    """The plain path: full records, sealed, each writer fed on its own."""
    published = (stored.record for stored in store.iter_records(published_only=True))
    records = list(_sealed(settings, store, published))
    out = Path(settings.export.dir)
    writer = ExportWriter(out)
    writer.write_markdown(records)
    writer.write_jsonl(records)
    topics = [topic.name for topic in settings.topics]
    size, base = settings.export.feed_size, settings.export.base_url
    write_feeds(out, records, topics, size=size, base_url=base, now=utc_now())


def tree(settings: Settings) -> dict[str, tuple[int, bytes]]:
    """Relative path → (mode, bytes) of every file of the export tree but the store mark
    (the export's own bookkeeping, which the reference path does not keep)."""
    out = Path(settings.export.dir)
    files = (path for path in sorted(out.rglob("*")) if path.is_file() and path.name != STORE_MARK)
    return {str(p.relative_to(out)): (p.stat().st_mode, p.read_bytes()) for p in files}


def seals(settings: Settings) -> dict[str, str]:
    with Store(settings.storage.url) as store:
        return {s.record.web_url: s.record.secured for s in store.iter_records()}


def export_both(reference: Settings, optimised: Settings) -> None:
    with Store(reference.storage.url) as store:
        reference_export(reference, store)
    with Store(optimised.storage.url) as store:
        export_configured(optimised, store)


def test_a_cold_export_is_byte_identical_to_the_reference(stores: tuple[Settings, ...]) -> None:
    reference, optimised = stores
    export_both(reference, optimised)
    files = tree(reference)
    assert len([name for name in files if name.endswith(".md")]) == 28
    assert tree(optimised) == files
    assert seals(optimised) == seals(reference)
    assert sum(bool(value) for value in seals(reference).values()) == 28
    markdown = sorted(Path(optimised.export.dir).glob("*.md"))
    assert all(outcome.ok for outcome in verify_paths(optimised, markdown))
    with Store(optimised.storage.url) as store:
        mark = (Path(optimised.export.dir) / STORE_MARK).read_text()
        assert mark == store_mark_text(store.change_marker(), export_fingerprint(optimised))


def test_a_rerun_and_a_changed_record_stay_identical(stores: tuple[Settings, ...]) -> None:
    reference, optimised = stores
    export_both(reference, optimised)
    for settings in (reference, optimised):
        with Store(settings.storage.url) as store:
            changed = next(s for s in store.iter_records() if s.record.web_url.endswith("/13"))
            store.set_heat(changed.id, 99)
            store.set_topics(changed.id, ["Robots"])
    export_both(reference, optimised)
    assert tree(optimised) == tree(reference)
    assert seals(optimised) == seals(reference)
