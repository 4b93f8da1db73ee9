#!/usr/bin/env python3
"""Accuracy of `aggregator.extract.extract_page` on the labeled page sets in ../shared/eval.

    python bench/eval_extract.py [--eval-dir ../shared/eval] [--misses FIELD]

Sets: postlight-parser-fixtures (ground_truth.json), mozilla-readability-testpages
(expected-metadata.json, no URL stored), newspaper4k-testdata (metadata/*.json).
Prints, per set and overall, the share of labeled pages whose field matches.

Comparison rules (also in docs/accuracy.md):
  text fields  entities decoded, NFKC, curly quotes/dashes made plain, whitespace collapsed,
               case-insensitive, trailing punctuation ignored
  excerpt      as text, or one is a prefix of the other when the shorter has >= 40 chars
               (labels are often cut)
  date         same UTC day; a label without a zone is compared by its own calendar day
  image        same host (without "www.") and path; scheme and query ignored. newspaper4k:
               top_image or meta_img
  site name    letters and digits only, case-insensitive
  canonical    same host (without "www."), path (without trailing "/") and query
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.dates import parse_datetime
from aggregator.errors import ExtractError
from aggregator.extract import extract_page
from aggregator.models import PageMetadata

FIELDS = ("title", "excerpt", "date", "image", "site_name", "canonical")
DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
_PUNCT_END = re.compile(r"[\s.!?…:;,]+$")
_PLAIN = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


@dataclass
class Case:
    """One labeled page: where it is, the URL it came from, and its labels."""

    name: str
    path: Path
    url: str
    labels: dict[str, list[str]] = field(default_factory=dict)


def norm_text(value: str) -> str:
    """Text normalised for comparison (see module docstring)."""
    text = unicodedata.normalize("NFKC", html.unescape(value)).translate(_PLAIN)
    return _PUNCT_END.sub("", " ".join(text.split()).casefold())


def match_text(got: str | None, want: str) -> bool:
    """Equal after `norm_text`."""
    return got is not None and norm_text(got) == norm_text(want)


def match_excerpt(got: str | None, want: str) -> bool:
    """Equal, or one a prefix of the other of at least 40 characters."""
    if got is None:
        return False
    a, b = norm_text(got), norm_text(want)
    short, long_ = sorted((a, b), key=len)
    return a == b or (len(short) >= 40 and long_.startswith(short.rstrip(". ")))


def match_date(got: datetime | None, want: str) -> bool:
    """Same UTC day (or the label's own day when it has no zone)."""
    label = parse_datetime(want.replace(" ", "T", 1) if "T" not in want else want)
    if got is None or label is None:
        return False
    if _ZONE.search(want.strip()):
        return got.astimezone(UTC).date() == label.date()
    return got.astimezone(UTC).date() == label.replace(tzinfo=None).date()


def _url_key(url: str, *, query: bool) -> str:
    parts = urlsplit(html.unescape(url.strip()))
    host = (parts.hostname or "").removeprefix("www.")
    path = unquote(parts.path).rstrip("/") if query else unquote(parts.path)
    return f"{host}{path}?{parts.query}" if query else f"{host}{path}"


def match_image(got: str | None, want: str) -> bool:
    """Same host and path, scheme and query ignored."""
    return got is not None and _url_key(got, query=False) == _url_key(want, query=False)


def match_canonical(got: str | None, want: str) -> bool:
    """Same host, path (without trailing slash) and query."""
    return got is not None and _url_key(got, query=True) == _url_key(want, query=True)


def match_site(got: str | None, want: str) -> bool:
    """Letters and digits only, case-insensitive."""
    key = lambda s: re.sub(r"[\W_]+", "", norm_text(s))  # noqa: E731
    return got is not None and key(got) == key(want)


def _labels(**values: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        kept = [str(v) for v in items if isinstance(v, str) and v.strip()]
        if kept:
            out[name] = kept
    return out


def postlight_cases(root: Path) -> Iterator[Case]:
    """Cases of postlight-parser-fixtures."""
    for item in json.loads((root / "ground_truth.json").read_text()):
        exp = item["expected"]
        yield Case(
            item["fixture"],
            root / item["fixture"],
            item.get("url") or f"http://fakehost/{item['fixture']}",
            _labels(
                title=exp.get("title"),
                excerpt=exp.get("dek"),
                date=exp.get("date_published"),
                image=exp.get("lead_image_url"),
            ),
        )


def mozilla_cases(root: Path) -> Iterator[Case]:
    """Cases of mozilla-readability-testpages (no URL: a neutral placeholder is used)."""
    for meta_path in sorted(root.glob("pages/*/expected-metadata.json")):
        exp = json.loads(meta_path.read_text())
        name = meta_path.parent.name
        yield Case(
            name,
            meta_path.parent / "source.html",
            f"http://fakehost/{name}/",
            _labels(
                title=exp.get("title"),
                excerpt=exp.get("excerpt"),
                date=exp.get("publishedTime"),
                site_name=exp.get("siteName"),
            ),
        )


def newspaper_cases(root: Path) -> Iterator[Case]:
    """Cases of newspaper4k-testdata."""
    for meta_path in sorted(root.glob("metadata/*.json")):
        exp = json.loads(meta_path.read_text())
        yield Case(
            meta_path.stem,
            root / "html" / f"{meta_path.stem}.html",
            exp.get("url") or f"http://fakehost/{meta_path.stem}/",
            _labels(
                title=exp.get("title"),
                excerpt=exp.get("meta_description"),
                date=exp.get("publish_date"),
                image=[exp.get("top_image"), exp.get("meta_img")],
                site_name=exp.get("meta_site_name"),
                canonical=exp.get("canonical_link"),
            ),
        )


SETS: dict[str, tuple[str, Callable[[Path], Iterator[Case]]]] = {
    "postlight": ("postlight-parser-fixtures", postlight_cases),
    "mozilla": ("mozilla-readability-testpages", mozilla_cases),
    "newspaper4k": ("newspaper4k-testdata", newspaper_cases),
}


def _got(meta: PageMetadata, name: str) -> object:
    return {
        "title": meta.title,
        "excerpt": meta.excerpt,
        "date": meta.published,
        "image": meta.images[0].url if meta.images else None,
        "site_name": meta.site_name,
        "canonical": meta.canonical_url,
    }[name]


_MATCHERS: dict[str, Callable[[object, str], bool]] = {
    "title": match_text,  # type: ignore[dict-item]
    "excerpt": match_excerpt,  # type: ignore[dict-item]
    "date": match_date,  # type: ignore[dict-item]
    "image": match_image,  # type: ignore[dict-item]
    "site_name": match_site,  # type: ignore[dict-item]
    "canonical": match_canonical,  # type: ignore[dict-item]
}

Score = dict[str, list[int]]  # field -> [hits, labeled]
Miss = tuple[str, str, str, object, list[str]]  # set, case, field, got, wanted


def evaluate(eval_dir: Path) -> tuple[dict[str, Score], list[Miss]]:
    """Per-set scores and the list of misses."""
    scores: dict[str, Score] = {}
    misses: list[Miss] = []
    for set_name, (folder, cases) in SETS.items():
        if not (eval_dir / folder).is_dir():
            continue
        score = scores.setdefault(set_name, {f: [0, 0] for f in FIELDS})
        for case in cases(eval_dir / folder):
            try:
                meta = extract_page(case.path.read_bytes(), case.url)
            except ExtractError:
                meta = PageMetadata(url=case.url)
            for name, wanted in case.labels.items():
                got = _got(meta, name)
                hit = any(_MATCHERS[name](got, want) for want in wanted)
                score[name][0] += hit
                score[name][1] += 1
                if not hit:
                    misses.append((set_name, case.name, name, got, wanted))
    return scores, misses


def overall(scores: dict[str, Score]) -> Score:
    """Scores summed over the sets."""
    total: Score = {f: [0, 0] for f in FIELDS}
    for score in scores.values():
        for name, (hits, count) in score.items():
            total[name][0] += hits
            total[name][1] += count
    return total


def format_table(scores: dict[str, Score]) -> str:
    """A Markdown table: one row per set plus overall, `rate (hits/n)` per field."""
    rows = [f"| set | {' | '.join(FIELDS)} |", "|---" * (len(FIELDS) + 1) + "|"]
    for set_name, score in (*scores.items(), ("overall", overall(scores))):
        cells = [f"{h / n:.2f} ({h}/{n})" if n else "—" for h, n in (score[f] for f in FIELDS)]
        rows.append(f"| {set_name} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--misses", choices=FIELDS, help="also list the misses of FIELD")
    args = parser.parse_args()
    scores, misses = evaluate(args.eval_dir)
    if not scores:
        raise SystemExit(f"no labeled sets under {args.eval_dir}")
    print(format_table(scores))
    for set_name, case, name, got, wanted in misses:
        if name == args.misses:
            print(f"\n[{set_name}] {case}\n  got:  {got!r}\n  want: {wanted!r}")


if __name__ == "__main__":
    main()
