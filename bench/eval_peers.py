#!/usr/bin/env python3
"""Score ours (extract_page), trafilatura and newspaper4k with the rules of bench/eval_extract.py.

    pip install trafilatura newspaper4k lxml_html_clean tinysegmenter jieba nltk pythainlp
    python bench/eval_peers.py [--eval-dir ../shared/eval] [--examples N] [--fix-meta-value]

Bench-only: the peers are not dependencies of aggregator (use a separate venv with the
project's runtime dependencies). Reuses eval_extract's cases, matchers and table format
unchanged. Every tool gets the page's HTML as a string (decoded by our decoder) plus the
case URL; the network is blocked (loopback only) and any attempt is counted, so newspaper4k
runs with fetch_images=False and .nlp() is never called. A page that raises counts as a
miss on every labeled field of that page. Results: docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

MAIN = Path(__file__).resolve().parents[1]
# newspaper4k (memo/cache dirs) and jieba (dict cache) write to the temp dir: a private one.
_TMP = tempfile.mkdtemp(prefix="eval-peers-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ["TMPDIR"] = _TMP
tempfile.tempdir = _TMP
sys.path[:0] = [str(MAIN), str(MAIN / "bench")]

# ---- network guard: only 127.0.0.0/8 / ::1 / localhost; record anything else -------------
BLOCKED: list[str] = []
CURRENT = ["-"]  # tool being run, to attribute blocked attempts
_LOCAL = ("127.", "::1", "localhost")
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: object) -> bool:
    return isinstance(host, str) and host.startswith(_LOCAL)


def _guard_connect(self, address):  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(address, tuple) and not _is_local(host):
        BLOCKED.append(f"{CURRENT[0]} connect {address!r}")
        raise OSError(f"peer_eval: network blocked ({address!r})")
    return _real_connect(self, address)


def _guard_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None and not _is_local(host):
        BLOCKED.append(f"{CURRENT[0]} getaddrinfo {host!r}")
        raise socket.gaierror(f"peer_eval: DNS blocked ({host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guard_connect  # type: ignore[method-assign]
socket.getaddrinfo = _guard_getaddrinfo

# tldextract (used by newspaper4k) would fetch the public suffix list on first use:
# use the bundled snapshot, no fetch, no disk cache (same as aggregator.normalize).
import tldextract.tldextract as _tldx  # noqa: E402

_tldx.TLD_EXTRACTOR = _tldx.TLDExtract(suffix_list_urls=(), cache_dir=None)

from importlib.metadata import version  # noqa: E402

import eval_extract as ev  # noqa: E402
import newspaper  # noqa: E402
import trafilatura  # noqa: E402

from aggregator.errors import ExtractError  # noqa: E402
from aggregator.extract import extract_page  # noqa: E402
from aggregator.models import PageMetadata  # noqa: E402

Got = dict[str, object]  # field -> value (a missing key = tool has no such field)


def _decode(raw: bytes) -> str:
    """HTML as str for the peers: our decoder (BOM, meta charset, utf-8), same for both peers."""
    from aggregator.extract_doc import decode_html

    return decode_html(raw, None)  # type: ignore[no-any-return]


_META = re.compile(r"<meta\b[^>]*>", re.I)
_VALUE = re.compile(r"(\s)value(\s*=)", re.I)
FIX_META = [False]


def _meta_value_to_content(text: str) -> str:
    """postlight fixtures store <meta value=...> (Postlight's normalisation) instead of content=.

    In memory only, for the peers, with --fix-meta-value: rename value= to content= in <meta>
    tags that have no content= attribute.
    """

    def fix(m: re.Match[str]) -> str:
        tag = m.group(0)
        return tag if re.search(r"\scontent\s*=", tag, re.I) else _VALUE.sub(r"\1content\2", tag, 1)

    return _META.sub(fix, text)


def _peer_html(raw: bytes) -> str:
    text = _decode(raw)
    return _meta_value_to_content(text) if FIX_META[0] else text


def ours(case: ev.Case, raw: bytes) -> Got:
    try:
        meta = extract_page(raw, case.url)
    except ExtractError:
        meta = PageMetadata(url=case.url)
    return {f: ev._got(meta, f) for f in ev.FIELDS}


def _day(value: str | None) -> datetime | None:
    """htmldate's 'YYYY-MM-DD' as a UTC-midnight datetime: match_date then compares that day."""
    if not value:
        return None
    return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)


def traf(case: ev.Case, raw: bytes) -> Got:
    doc = trafilatura.extract_metadata(_peer_html(raw), default_url=case.url)
    return {
        "title": doc.title,
        "excerpt": doc.description,
        "date": _day(doc.date),
        "image": doc.image,
        "site_name": doc.sitename,
        "canonical": doc.url,  # note: falls back to default_url when the page has none
    }


def news(case: ev.Case, raw: bytes) -> Got:
    # fetch_images=False: otherwise top_image selection downloads candidate images to size them
    art = newspaper.Article(case.url, fetch_images=False)
    art.download(input_html=_peer_html(raw), ignore_read_more=True)
    art.parse()  # never .nlp(): no NLTK
    date = art.publish_date
    if isinstance(date, datetime) and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)  # naive = UTC (host TZ is UTC anyway)
    return {
        "title": art.title or None,
        "excerpt": art.meta_description or None,
        "date": date if isinstance(date, datetime) else None,
        "image": art.top_image or art.meta_img or None,
        "site_name": art.meta_site_name or None,
        "canonical": art.canonical_link or None,
    }


TOOLS: dict[str, Callable[[ev.Case, bytes], Got]] = {
    "ours": ours,
    "trafilatura": traf,
    "newspaper4k": news,
}


def run(eval_dir: Path):  # type: ignore[no-untyped-def]
    """scores[tool][set][field] = [hits, labeled]; got[tool][(set, case)] = Got; errors."""
    scores = {t: {} for t in TOOLS}
    gots: dict[str, dict[tuple[str, str], Got]] = {t: {} for t in TOOLS}
    errors: dict[str, Counter[str]] = {t: Counter() for t in TOOLS}
    cases: dict[tuple[str, str], ev.Case] = {}
    for set_name, (folder, make_cases) in ev.SETS.items():
        if not (eval_dir / folder).is_dir():
            continue
        for case in make_cases(eval_dir / folder):
            cases[(set_name, case.name)] = case
            raw = case.path.read_bytes()
            for tool, fn in TOOLS.items():
                score = scores[tool].setdefault(set_name, {f: [0, 0] for f in ev.FIELDS})
                CURRENT[0] = tool
                try:
                    got = fn(case, raw)
                except Exception as exc:
                    errors[tool][f"{set_name}/{case.name}: {type(exc).__name__}: {exc}"[:160]] += 1
                    got = dict.fromkeys(ev.FIELDS)
                gots[tool][(set_name, case.name)] = got
                for name, wanted in case.labels.items():
                    if name not in got:
                        continue
                    hit = any(ev._MATCHERS[name](got[name], w) for w in wanted)
                    score[name][0] += hit
                    score[name][1] += 1
    return scores, gots, errors, cases


def main() -> None:
    """Score the three tools and print their tables, title wins and date/canonical notes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ev.DEFAULT_EVAL_DIR)
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument(
        "--fix-meta-value", action="store_true", help="peers: <meta value=> read as content="
    )
    args = parser.parse_args()
    FIX_META[0] = args.fix_meta_value
    print(
        f"trafilatura {version('trafilatura')}, htmldate {version('htmldate')}, "
        f"newspaper4k {version('newspaper4k')}, lxml {version('lxml')}"
    )
    scores, gots, errors, cases = run(args.eval_dir)
    for tool in TOOLS:
        print(f"\n## {tool}  (pages that raised: {sum(errors[tool].values())})")
        print(ev.format_table(scores[tool]))
        kinds = Counter(m.split(": ", 1)[1][:70].splitlines()[0] for m in errors[tool])
        for kind, n in kinds.most_common(5):
            print(f"  raised x{n}: {kind}")
    # title wins of each peer over ours
    for peer in ("trafilatura", "newspaper4k"):
        wins = []
        for key, case in cases.items():
            want = case.labels.get("title")
            if not want:
                continue
            o, p = gots["ours"][key]["title"], gots[peer][key]["title"]
            if not any(ev.match_text(o, w) for w in want) and any(
                ev.match_text(p, w) for w in want
            ):
                wins.append((key, want[0], o, p))
        print(f"\n## title: {peer} right, ours wrong: {len(wins)} pages")
        for (s, n), w, o, p in wins[: args.examples]:
            print(f"[{s}] {n}\n  label: {w!r}\n  ours:  {o!r}\n  {peer}: {p!r}")
    # date misses off by one day (page-local day vs label UTC day)
    for tool in TOOLS:
        off = 0
        for key, case in cases.items():
            g = gots[tool][key].get("date")
            for w in case.labels.get("date", []):
                if isinstance(g, datetime) and not ev.match_date(g, w):
                    lab = ev.parse_datetime(w.replace(" ", "T", 1) if "T" not in w else w)
                    if (
                        lab
                        and abs((g.astimezone(UTC).date() - lab.astimezone(UTC).date()).days) == 1
                    ):
                        off += 1
                        break
        print(f"date misses off by exactly one day, {tool}: {off}")
    # canonical hits that are just the case URL echoed back
    for tool in TOOLS:
        echo = sum(
            1
            for key, case in cases.items()
            if "canonical" in case.labels
            and gots[tool][key].get("canonical") == case.url
            and any(ev.match_canonical(case.url, w) for w in case.labels["canonical"])
        )
        print(f"canonical == case URL (and label == case URL), {tool}: {echo}")
    print(
        f"\nnetwork attempts blocked: {len(BLOCKED)}", dict(Counter(b.split()[0] for b in BLOCKED))
    )
    for b in sorted(set(BLOCKED))[:5]:
        print("  ", b)


if __name__ == "__main__":
    main()
