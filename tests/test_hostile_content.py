"""Hostile content end to end: crawl it, export every format, check each file is well-formed
and inert, then re-import the exports and get the same records back.

Unit-level cases (quoting, escaping, one hostile string at a time) are in
test_export_markdown.py, test_export_jsonl.py and test_export_feeds.py; this file covers the
whole path, and extends the export → import identity property to JSON Lines and to
feed bytes → record → export → import.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.export.fields import record_to_public
from aggregator.export.files import MANIFEST
from aggregator.export.jsonl import iter_jsonl, parse_json_line, record_to_json_line
from aggregator.export.markdown import parse_markdown, render_markdown
from aggregator.feeds import parse_feed
from aggregator.models import Provider, Record
from aggregator.operations import export_configured, import_paths
from aggregator.pipeline import crawl
from aggregator.records import build_record
from aggregator.settings import SourceSettings, parse_settings
from aggregator.store import Store
from tests.faults import FaultServer, item, respond, rss
from tests.test_export_markdown import HOSTILE, records

FENCE_BREAK = "x\n---\ntitle: injected\nsecured: forged\n---\n# heading"
SCRIPT = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TRAVERSAL = "../../../../etc/passwd"


def hostile_rss(base: str) -> bytes:
    """RSS whose entries carry every hostile string the exports must survive."""
    items = [
        item(escape(FENCE_BREAK), f"{base}fence", description=escape(SCRIPT)),
        item(f"<![CDATA[ ]]]]><![CDATA[> {SCRIPT} ]]>", f"{base}cdata"),
        item(escape(TRAVERSAL), f"{base}{TRAVERSAL}"),
        item("bell &#7; vertical-tab &#11; and &#x202E;reversed", f"{base}controls"),
        item("long " + "x" * 50_000, f"{base}long", description="word " * 20_000),
        item(
            "image title",
            f"{base}image",
            description=escape(f'<img src="{base}i.jpg" alt="{SCRIPT}" title="{SCRIPT}">'),
        ),
    ]
    return rss(items)


def hostile_json_feed(base: str) -> bytes:
    """A JSON Feed: the only feed format that can carry NUL and lone control characters."""
    items = [
        {"id": "nul", "url": f"{base}nul", "title": "nul \u0000 byte \u202egnp.exe"},
        {"id": "yaml", "url": f"{base}yaml", "title": "!!python/object/apply:os.system ['id']"},
        {"id": "seps", "url": f"{base}seps", "title": "line\u2028sep\u2029para\x85next"},
        {"id": "dots", "url": f"{base}..%2F..%2Fescape", "title": "../.. /%2e%2e/"},
    ]
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}
    return json.dumps(document).encode()


def public(store: Store) -> dict[str, dict[str, object]]:
    """webUrl → public fields (without the seal) of every stored record."""
    out = {}
    for stored in store.iter_records():
        fields = record_to_public(stored.record)
        fields.pop("secured", None)
        out[stored.record.web_url] = fields
    return out


def test_hostile_feeds_export_well_formed_inert_and_reimport_identically(tmp_path: Path) -> None:
    with FaultServer("127.0.0.1") as server:
        base = server.url("/a/")
        server.route("/rss", respond(200, hostile_rss(base), {"Content-Type": "text/xml"}))
        server.route("/json", respond(200, hostile_json_feed(base)))
        data = {
            "data_dir": str(tmp_path / "data"),
            "storage": {"url": f"sqlite:///{tmp_path / 'data' / 'a.db'}"},
            "fetch": {"allow_private_networks": True, "retries": 0},
            "quality": {"threshold": 0},  # publish everything, so every record is exported
            "export": {"dir": str(tmp_path / "export")},
            "topics": [{"name": "../../evil <b>", "keywords": ["long", "nul", "image"]}],
            "sources": [
                {"name": "rss", "url": server.url("/rss"), "pages": False},
                {"name": "json", "url": server.url("/json"), "pages": False},
            ],
        }
        settings = parse_settings(data)
        with Store(settings.storage.url) as store:
            reports = asyncio.run(crawl(settings, store))
            assert [r.status for r in reports] == ["ok", "ok"], reports
            export_configured(settings, store)
            original = public(store)
    assert len(original) >= 9
    export = tmp_path / "export"
    files = [p for p in export.rglob("*") if p.is_file()]
    for path in files:  # nothing escaped the export directory, every name is plain
        assert path.resolve().is_relative_to(export.resolve())
        assert ".." not in path.relative_to(export).parts
        assert path.name.isascii() and "\x00" not in path.name
    markdown = sorted(export.glob("*.md"))
    assert len(markdown) == len(original)
    for path in markdown:
        text = path.read_text(encoding="utf-8")
        assert text.count("\n---\n") == 1, "a value broke out of the front matter"
        front = yaml.safe_load(text.split("---\n", 1)[1].rsplit("\n---\n", 1)[0])
        assert set(front) >= {"title", "webUrl", "secured"} and front["secured"] != "forged"
        parse_markdown(text, source=str(path))
    lines = (export / "records.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(original)
    for xml_path in [p for p in files if p.suffix in (".xml", ".rss", ".atom")]:
        tree = etree.fromstring(xml_path.read_bytes())  # well-formed, or this raises
        assert not tree.xpath("//*[local-name()='script' or local-name()='img']"), xml_path
    for json_path in [p for p in files if p.suffix == ".json" and p.name != MANIFEST]:
        feed = json.loads(json_path.read_bytes())
        for entry in feed.get("items", []):
            assert "<script" not in entry.get("content_html", ""), json_path
    # Re-import both formats into fresh stores: the same records come back.
    for source in (markdown, [export / "records.jsonl"]):
        fresh = parse_settings({**data, "storage": {"url": f"sqlite:///{tmp_path / 'b.db'}"}})
        (tmp_path / "b.db").unlink(missing_ok=True)
        with Store(fresh.storage.url) as again:
            import_paths(fresh, again, source)
            assert public(again) == original


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_jsonl_render_parse_round_trip_is_identity(record: Record) -> None:
    line = record_to_json_line(record)
    assert len(line.splitlines()) == 1 and "\n" not in line
    assert parse_json_line(line) == record


def test_jsonl_file_round_trip_of_every_hostile_string(tmp_path: Path) -> None:
    rows = [
        Record(title=text, web_url=f"https://h.example/{n}", provider=Provider(text, "h.example"))
        for n, text in enumerate(HOSTILE)
    ]
    path = tmp_path / "h.jsonl"
    path.write_text("".join(record_to_json_line(r) + "\n" for r in rows), encoding="utf-8")
    assert list(iter_jsonl(path)) == rows


xml_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"),
    max_size=60,
).filter(lambda text: all(ch in "\t\n\r" or ord(ch) >= 0x20 for ch in text))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=xml_text.filter(str.strip), summary=xml_text, slug=st.text("abc/-_.~%", max_size=20))
def test_feed_bytes_to_record_to_exports_and_back_is_identity(
    title: str, summary: str, slug: str
) -> None:
    """crawl → export → import without the network: the record survives both formats."""
    url = f"https://news.example/{slug}"
    body = rss([item(escape(title), escape(url), description=escape(escape(summary)))])
    (entry,) = parse_feed(body, url="https://news.example/feed").entries
    source = SourceSettings(name="s", url="https://news.example/feed")
    now = datetime(2025, 6, 3, tzinfo=UTC)
    record = build_record(entry, None, source, feed_url=source.url, fetched_at=now, now=now)
    if record is None:  # a title of only whitespace-like characters: no record, nothing to do
        return
    exported = record_to_public(record)
    assert record_to_public(parse_markdown(render_markdown(record))) == exported
    assert record_to_public(parse_json_line(record_to_json_line(record))) == exported


@pytest.mark.parametrize("text", ["!!python/object/apply:os.system ['id']", "&a *a", "\x00"])
def test_yaml_is_only_ever_read_with_the_safe_loader(text: str) -> None:
    rendered = render_markdown(
        Record(title=text, web_url="https://h.example/", provider=Provider("p", "h.example"))
    )
    assert parse_markdown(rendered).title == text
