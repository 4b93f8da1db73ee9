#!/usr/bin/env python3
"""Score the story linker and related lists against labeled sets; print a table.

Usage:
    python bench/eval_linking.py [--eval-dir ../shared/eval] [--corpus DIR] [--window-hours H]
                                 [--halves] [--seed N] [--feeds N]

`--halves` adds giveme5w1h's even and odd events as separate rows (a held-out split: tune
on one, read the other); `--seed` / `--feeds` generate another synthetic corpus.

Sets:
  giveme5w1h   ../shared/eval/giveme5w1h-news-cluster (419 real articles, 70 events)
  synthetic    ../shared/bench/gen_corpus.py --feeds 60 --items 30 --seed 1 (generated into
               /tmp/linkcorpus unless --corpus DIR is given), truth.jsonl story_id/topics

Items are fed to `StoryIndex.add` in publication order with `now` = the item's time (undated
items last, at the latest time). Stored story ids are rewritten on merges, and related lists
are recomputed for the `touched_keys` of each add, as the pipeline does; `moved_keys`
(merges, warm-up splits) get their current story id. Measures:
pairwise P/R/F1, B-cubed P/R/F1 of stories vs labels; related precision (share of entries with
the same label) and precision@1. "ceiling" is the best pairwise F1 any linker can reach when
links are limited to the window (labels split where a gap between items exceeds it).
giveme5w1h events span weeks to years, so it is also run with the window covering the set.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.stories import LinkItem, StoryIndex  # noqa: E402

SHARED = ROOT.parent / "shared"


@dataclass(frozen=True)
class Labeled:
    """One labeled item: what the linker sees, its event label and its truth topics."""

    item: LinkItem
    label: str


# ------------------------------------------------------------------ loading


def _parse_date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value == "None":
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_giveme(folder: Path) -> list[Labeled]:
    """giveme5w1h-news-cluster articles with event ids; topic = the set's category."""
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    out = []
    for key, row in enumerate(sorted(labels, key=lambda r: r["file"])):
        art = json.loads((folder / row["file"]).read_text(encoding="utf-8"))
        item = LinkItem(
            key=key,
            provider=str(art.get("source_domain") or ""),
            web_url=str(art.get("url") or row["url"]),
            published=_parse_date(art.get("date_publish")),
            title=str(art.get("title") or ""),
            excerpt=str(art.get("description") or ""),
            text=str(art.get("text") or ""),
            topics=(str(row.get("category") or ""),),
        )
        out.append(Labeled(item, str(row["event_id"])))
    return out


_META = re.compile(r'<meta property="og:(title|description)" content="([^"]*)"')
_BODY = re.compile(r'<div class="article-body">(.*?)</div><div class="tags">', re.S)
_PARA = re.compile(r"<p>(.*?)</p>", re.S)


def load_synthetic(corpus: Path) -> list[Labeled]:
    """The generated corpus: og:title / og:description / body paragraphs of each page."""
    rows = [json.loads(line) for line in (corpus / "truth.jsonl").read_text().splitlines()]
    out = []
    for key, row in enumerate(rows):
        path = corpus / row["url"].split("/", 3)[3]
        page = path.read_text(encoding="utf-8")
        meta = {m.group(1): html.unescape(m.group(2)) for m in _META.finditer(page)}
        body = _BODY.search(page)
        paras = _PARA.findall(body.group(1)) if body else []
        item = LinkItem(
            key=key,
            provider=row["outlet_id"],
            web_url=row["url"],
            published=_parse_date(row["published"]),
            title=meta.get("title", row["title"]),
            excerpt=meta.get("description", ""),
            text="\n".join(html.unescape(p) for p in paras),
            topics=tuple(row["topics"]),
        )
        out.append(Labeled(item, row["story_id"]))
    return out


# ------------------------------------------------------------------ running


@dataclass
class RunResult:
    """Final stored story id and related list per key."""

    stories: dict[int, str]
    related: dict[int, list[int]]
    seconds: float


def run(
    data: Sequence[Labeled], window: timedelta, *, with_related: bool = True, **params: float
) -> RunResult:
    """Feed items in publication order, keeping stored ids and related lists current."""
    index = StoryIndex(window=window, **params)  # type: ignore[arg-type]
    latest = max(d.item.published for d in data if d.item.published)
    order = sorted(data, key=lambda d: (d.item.published or latest, d.item.published is None))
    stored: dict[int, str] = {}
    by_story: dict[str, set[int]] = defaultdict(set)
    related: dict[int, list[int]] = {}
    started = time.perf_counter()
    for labeled in order:
        now = labeled.item.published or latest
        result = index.add(labeled.item, now=now)
        for old in result.merged_from:
            for key in by_story.pop(old, set()):
                stored[key] = result.story_id
                by_story[result.story_id].add(key)
        stored[labeled.item.key] = result.story_id
        by_story[result.story_id].add(labeled.item.key)
        for key in result.moved_keys:  # merges and warm-up splits (the new item too)
            by_story[stored[key]].discard(key)
            stored[key] = index.story_of(key)
            by_story[stored[key]].add(key)
        for key in result.touched_keys if with_related else ():
            related[key] = index.related(key, limit=6)
    return RunResult(stored, related, time.perf_counter() - started)


# ------------------------------------------------------------------ metrics


def _pairs(groups: dict[str, list[int]]) -> int:
    return sum(len(g) * (len(g) - 1) // 2 for g in groups.values())


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def cluster_scores(pred: dict[int, str], truth: dict[int, str]) -> dict[str, float]:
    """Pairwise and B-cubed precision, recall and F1 of predicted vs true clusters."""
    pg: dict[str, list[int]] = defaultdict(list)
    tg: dict[str, list[int]] = defaultdict(list)
    both: dict[tuple[str, str], int] = defaultdict(int)
    for key, label in truth.items():
        pg[pred[key]].append(key)
        tg[label].append(key)
        both[(pred[key], label)] += 1
    tp = sum(n * (n - 1) // 2 for n in both.values())
    p = tp / _pairs(pg) if _pairs(pg) else 1.0
    r = tp / _pairs(tg) if _pairs(tg) else 1.0
    bp = sum(both[(pred[k], truth[k])] / len(pg[pred[k]]) for k in truth) / len(truth)
    br = sum(both[(pred[k], truth[k])] / len(tg[truth[k]]) for k in truth) / len(truth)
    return {"P": p, "R": r, "F1": _f1(p, r), "bP": bp, "bR": br, "bF1": _f1(bp, br)}


def related_scores(related: dict[int, list[int]], truth: dict[int, str]) -> dict[str, float]:
    """Share of related entries with the same label, precision@1, and coverage."""
    entries = hits = firsts = first_hits = 0
    for key, keys in related.items():
        if not keys:
            continue
        entries += len(keys)
        hits += sum(1 for other in keys if truth[other] == truth[key])
        firsts += 1
        first_hits += truth[keys[0]] == truth[key]
    return {
        "relP": hits / entries if entries else 0.0,
        "P@1": first_hits / firsts if firsts else 0.0,
        "cov": firsts / len(truth),
    }


def window_ceiling(data: Sequence[Labeled], window: timedelta) -> float:
    """Best pairwise F1 when a label splits wherever its items are a window apart."""
    latest = max(d.item.published for d in data if d.item.published)
    split: dict[int, str] = {}
    by_label: dict[str, list[Labeled]] = defaultdict(list)
    for d in data:
        by_label[d.label].append(d)
    for label, items in by_label.items():
        items.sort(key=lambda d: d.item.published or latest)
        part, prev = 0, None
        for d in items:
            when = d.item.published or latest
            if prev is not None and when - prev > window:
                part += 1
            split[d.item.key] = f"{label}#{part}"
            prev = when
    truth = {d.item.key: d.label for d in data}
    return cluster_scores(split, truth)["F1"]


def topic_f1(data: Sequence[Labeled]) -> str:
    """Micro F1 of aggregator.topics on the synthetic topics, or '-' when unavailable."""
    config = ROOT / "bench" / "topics.bench.yaml"
    if not config.is_file():
        return "-"
    try:
        import yaml

        from aggregator.settings import TopicSettings
        from aggregator.topics import TopicMatcher  # type: ignore[import-not-found,unused-ignore]

        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        rules = raw.get("topics", raw) if isinstance(raw, dict) else raw
        matcher = TopicMatcher(tuple(TopicSettings.model_validate(t) for t in rules))
        tp = fp = fn = 0
        for d in data:
            got = set(_match_topics(matcher, d.item))
            want = set(d.item.topics)
            tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
        return f"{_f1(tp / max(1, tp + fp), tp / max(1, tp + fn)):.3f}"
    except Exception as exc:  # the topic matcher is someone else's moving target
        return f"n/a ({type(exc).__name__})"


def _match_topics(matcher: object, item: LinkItem) -> list[str]:
    match = getattr(matcher, "match")  # noqa: B009 - duck-typed: the module may be absent
    found = match(title=item.title, excerpt=item.excerpt, body=item.text, categories=(), source="")
    return [str(getattr(t, "topic", t)) for t in found]


# ------------------------------------------------------------------ main


def evaluate(name: str, data: Sequence[Labeled], window: timedelta, label: str) -> dict[str, str]:
    """One table row."""
    truth = {d.item.key: d.label for d in data}
    result = run(data, window)
    scores = cluster_scores(result.stories, truth) | related_scores(result.related, truth)
    row = {"set": name, "window": label, "items": str(len(data))}
    row |= {k: f"{v:.3f}" for k, v in scores.items()}
    row["ceiling"] = f"{window_ceiling(data, window):.3f}"
    row["ms/add"] = f"{1000 * result.seconds / len(data):.2f}"
    return row


def events_half(data: Sequence[Labeled], parity: int) -> list[Labeled]:
    """The items of every other event (by event id order): a held-out split."""
    labels = sorted({d.label for d in data}, key=lambda s: (len(s), s))
    keep = {label for n, label in enumerate(labels) if n % 2 == parity}
    return [d for d in data if d.label in keep]


def ensure_corpus(corpus: Path | None, seed: int = 1, feeds: int = 60) -> Path | None:
    """The synthetic corpus folder, generated into /tmp/linkcorpus when not given.

    Other seeds or sizes than the default go to /tmp/linkcorpus-<feeds>x30-s<seed>.
    """
    if corpus is not None:
        return corpus
    default = (seed, feeds) == (1, 60)
    target = Path("/tmp/linkcorpus" if default else f"/tmp/linkcorpus-{feeds}x30-s{seed}")
    if (target / "truth.jsonl").is_file():
        return target
    generator = ROOT / "bench" / "gen_corpus.py"
    if not generator.is_file():
        return None
    args = ["--feeds", str(feeds), "--items", "30", "--seed", str(seed), "--out", str(target)]
    subprocess.run([sys.executable, str(generator), *args], check=True, capture_output=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Run every available set and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval-dir", type=Path, default=SHARED / "eval")
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--window-hours", type=float, default=72.0)
    ap.add_argument("--seed", type=int, default=1, help="synthetic corpus seed")
    ap.add_argument("--feeds", type=int, default=60, help="synthetic corpus outlets")
    ap.add_argument(
        "--halves", action="store_true", help="also giveme5w1h's even and odd events apart"
    )
    args = ap.parse_args(argv)
    window = timedelta(hours=args.window_hours)
    rows = []
    giveme = args.eval_dir / "giveme5w1h-news-cluster"
    if giveme.is_dir():
        data = load_giveme(giveme)
        rows.append(evaluate("giveme5w1h", data, window, f"{args.window_hours:g}h"))
        rows.append(evaluate("giveme5w1h", data, timedelta(days=3650), "all"))
        for parity in (0, 1) if args.halves else ():
            half = events_half(data, parity)
            name = f"giveme5w1h-{'even' if parity == 0 else 'odd'}"
            rows.append(evaluate(name, half, timedelta(days=3650), "all"))
    corpus = ensure_corpus(args.corpus, args.seed, args.feeds)
    if corpus is not None:
        data = load_synthetic(corpus)
        rows.append(evaluate("synthetic", data, window, f"{args.window_hours:g}h"))
        rows[-1]["topicF1"] = topic_f1(data)
    print_table(rows)
    return 0


def print_table(rows: list[dict[str, str]]) -> None:
    """Print rows as an aligned text table."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(row.get(c, "").ljust(widths[c]) for c in columns))


if __name__ == "__main__":
    raise SystemExit(main())
