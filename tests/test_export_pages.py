"""The export tree rendered by helper processes beside this one (`export_pages`).

The reference is the plain one-process path of tests/test_export_identical.py, on the same
store: the files must be the same bytes except for the seals of the pages a helper rendered
(their nonces are random there; here they are fixed), and every seal must verify. The page
scheduler is checked on its own: pages come back in order whatever order the helpers finish
in, a failed helper page is rendered here, and the pages waiting here stay bounded.
"""

from __future__ import annotations

import random
import re
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aggregator import export_pages
from aggregator.export import entries, seal
from aggregator.export_pages import PageJob, RenderedPage, helper_count, render_pages
from aggregator.operations import export_configured, verify_paths
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store, export_read
from tests.test_export_identical import KEY, fill, reference_export, seals, tree

FIXED_NONCE = ";AAAAAAAAAAAAAAAA"  # what `bytes(12)` gives as the nonce of a seal
_SEAL_VALUE = re.compile(rb'("?secured"?: ?)"[^"]*"')


def make_settings(tmp_path: Path, name: str, workers: int) -> Settings:
    return parse_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "storage": {"url": f"sqlite:///{tmp_path / name / 'a.db'}"},
            "export": {"dir": str(tmp_path / name / "export"), "feed_size": 5},
            "fetch": {"parse_workers": workers},
            "topics": [{"name": "AI"}, {"name": "Robots"}],
            "sources": [{"name": "s", "url": "https://news.example/feed"}],
        }
    )


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Settings]:
    """The reference's settings (one process) and the export's (two helpers), same records."""
    monkeypatch.setenv(seal.KEY_ENV, KEY)
    monkeypatch.setattr(seal, "secrets", SimpleNamespace(token_bytes=bytes))  # here only
    monkeypatch.setattr(export_read, "PAGE_SIZE", 4)
    monkeypatch.setattr(entries, "MEMO_SIZE", 2)
    reference = make_settings(tmp_path, "ref", workers=1)
    parallel = make_settings(tmp_path, "par", workers=3)
    with Store(reference.storage.url) as store:
        fill(store)
    (tmp_path / "par").mkdir()
    shutil.copyfile(tmp_path / "ref" / "a.db", tmp_path / "par" / "a.db")
    return reference, parallel


def masked(files: dict[str, tuple[int, bytes]]) -> dict[str, tuple[int, bytes]]:
    return {name: (mode, _SEAL_VALUE.sub(rb'\1"*"', data)) for name, (mode, data) in files.items()}


def file_seals(settings: Settings) -> dict[str, str]:
    """webUrl → seal, read back from the Markdown files."""
    found = {}
    for path in Path(settings.export.dir).glob("*.md"):
        text = path.read_text()
        url = re.search(r'^webUrl: "?([^"\n]+)"?$', text, re.M)
        secured = re.search(r'^secured: "?([^"\n]+)"?$', text, re.M)
        assert url and secured, path
        found[url.group(1)] = secured.group(1)
    return found


def test_helpers_write_the_reference_tree_and_valid_seals(stores: tuple[Settings, ...]) -> None:
    reference, parallel = stores
    with Store(reference.storage.url) as store:
        reference_export(reference, store)
    with Store(parallel.storage.url) as store:
        export_configured(parallel, store)
    expected, got = tree(reference), tree(parallel)
    assert len([name for name in got if name.endswith(".md")]) == 28
    assert got.keys() == expected.keys()
    assert masked(got) == masked(expected)
    assert got["records.jsonl"][1].count(b"\n") == 28
    # the feeds carry no seal: byte for byte, although helpers sent their records stripped
    assert {n: f for n, f in got.items() if n.startswith("feeds/")} == {
        n: f for n, f in expected.items() if n.startswith("feeds/")
    }
    in_files = file_seals(parallel)
    stored = {url: value for url, value in seals(parallel).items() if value}
    assert in_files == stored
    here = sum(value.endswith(FIXED_NONCE) for value in in_files.values())
    assert 0 < here < len(in_files), "both this process and the helpers rendered pages"
    markdown = sorted(Path(parallel.export.dir).glob("*.md"))
    assert all(outcome.ok for outcome in verify_paths(parallel, markdown))


def test_a_rerun_with_helpers_rewrites_nothing(stores: tuple[Settings, ...]) -> None:
    _, parallel = stores
    with Store(parallel.storage.url) as store:
        export_configured(parallel, store)
        before = tree(parallel)
        summaries = export_configured(parallel, store)
    assert tree(parallel) == before
    assert "0 written, 28 unchanged, 0 removed" in summaries[0]
    assert "unchanged" in summaries[1]


def test_pages_of_a_dead_helper_are_rendered_here(
    stores: tuple[Settings, ...], caplog: pytest.LogCaptureFixture
) -> None:
    """Helpers that cannot even open the store break their pool: every page comes from here,
    complete and in order."""
    reference, parallel = stores
    with Store(reference.storage.url) as store:
        reference_export(reference, store)
    Path(parallel.export.dir).mkdir(parents=True)
    with Store(parallel.storage.url) as store:
        reader = store.export_reader()
        ids = reader.published_ids()
        pages = [ids[start : start + 4] for start in range(0, len(ids), 4)]
        job = PageJob(
            storage_url=f"{parallel.storage.url}/under-a-file.db",
            busy_timeout_seconds=1.0,
            out_dir=parallel.export.dir,
            key=seal.load_or_create_key(Path(parallel.data_dir)),
            instance=seal.instance_id(Path(parallel.data_dir)),
            markdown=True,
            jsonl=True,
        )
        rendered = list(render_pages(job, store, pages, 2, lambda index: True))
    assert "export helpers unavailable" in caplog.text or "helper failed" in caplog.text
    assert [len(page.files) for page in rendered] == [len(page) for page in pages]
    urls = [url for page in rendered for url, _, _ in page.files]
    assert urls == [record.web_url for page in rendered for record in page.records]
    expected_jsonl = tree(reference)["records.jsonl"][1]
    assert b"".join(page.jsonl for page in rendered) == expected_jsonl  # fixed nonces: here


@pytest.mark.parametrize(
    ("parse_workers", "pages", "cpus", "helpers"),
    [
        (None, 12, 2, 1),
        (None, 12, 8, 7),
        (None, 12, 0, 0),  # one CPU: `default_workers` is 0
        (None, 1, 8, 0),
        (0, 12, 8, 0),
        (1, 12, 8, 0),
        (3, 12, 1, 2),  # asked for explicitly, as the crawl's pool honours it
        (8, 3, 8, 2),
    ],
)
def test_helper_count(parse_workers: int | None, pages: int, cpus: int, helpers: int) -> None:
    assert helper_count(parse_workers, pages, cpus) == helpers


def page(index: int) -> RenderedPage:
    return RenderedPage(((f"u{index}", f"n{index}", True),), b"%d\n" % index, (), ())


class ThreadHelpers:
    """Helpers that finish their pages after random delays, in any order; `fail` pages raise,
    and after `break_after` submissions the pool is gone."""

    def __init__(self, fail: set[int] = frozenset(), break_after: int | None = None) -> None:
        self.executor = ThreadPoolExecutor(3)
        self.fail = fail
        self.break_after = break_after
        self.submitted: list[int] = []
        self.rng = random.Random(7)

    def submit(self, index: int) -> Future[RenderedPage] | None:
        if self.break_after is not None and len(self.submitted) >= self.break_after:
            return None
        self.submitted.append(index)
        delay = self.rng.uniform(0, 0.01)
        return self.executor.submit(self.run, index, delay)

    def run(self, index: int, delay: float) -> RenderedPage:
        time.sleep(delay)
        if index in self.fail:
            raise OSError("helper failed")
        return page(index)


def run_in_order(count: int, helpers: Any, ahead: int) -> tuple[list[RenderedPage], list[int], int]:
    """The yielded pages, the pages rendered here, and the most that waited here at once."""
    here: list[int] = []
    yielded: set[int] = set()
    most_waiting = 0

    def render_here(index: int) -> RenderedPage:
        nonlocal most_waiting
        here.append(index)
        most_waiting = max(most_waiting, len(set(here) - yielded))
        time.sleep(0.002)
        return page(index)

    out = []
    for rendered in export_pages._in_order(count, render_here, helpers, ahead):
        out.append(rendered)
        yielded.add(int(rendered.jsonl))
    helpers and helpers.executor.shutdown()
    return out, here, most_waiting


def test_pages_come_back_in_order_whoever_renders_them() -> None:
    helpers = ThreadHelpers()
    out, here, most_waiting = run_in_order(40, helpers, ahead=4)
    assert [p.jsonl for p in out] == [b"%d\n" % i for i in range(40)]
    assert sorted(here + helpers.submitted) == list(range(40))  # each page rendered once
    assert here and helpers.submitted
    assert most_waiting <= export_pages.WAITING_HERE + 1  # plus the one being yielded


def test_a_failed_helper_page_is_rendered_here() -> None:
    helpers = ThreadHelpers(fail={0, 5, 6})
    out, here, _ = run_in_order(20, helpers, ahead=2)
    assert [p.jsonl for p in out] == [b"%d\n" % i for i in range(20)]
    assert {0, 5, 6} <= set(here)
    assert sorted(set(here) | set(helpers.submitted)) == list(range(20))


def test_without_helpers_or_once_they_are_gone_every_page_is_rendered_here() -> None:
    out, here, _ = run_in_order(9, None, ahead=2)
    assert [p.jsonl for p in out] == [b"%d\n" % i for i in range(9)] and here == list(range(9))
    helpers = ThreadHelpers(break_after=3)
    out, here, _ = run_in_order(9, helpers, ahead=2)
    assert [p.jsonl for p in out] == [b"%d\n" % i for i in range(9)]
    assert sorted(here + helpers.submitted) == list(range(9))
    assert len(helpers.submitted) == 3
