"""Quality score (0–100) of a record as a news item, built from named, explainable parts.

    score_quality(record, now=…, source_weight=…, providers_in_story=…, is_near_duplicate=…)
      → QualityScore(score, reasons)      every part is a QualityReason(name, points, detail)
    is_publishable(score, threshold=…, is_duplicate=…) → bool

The score is the sum of the parts' points, clamped to 0–100. Every part is always listed, with
0 points when it neither helped nor hurt, so `aggregator explain` shows the whole breakdown.
The formula, as a table, is in ``docs/quality.md``; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from aggregator.dates import DEFAULT_SKEW, EARLIEST_PLAUSIBLE, to_utc
from aggregator.models import QualityReason, Record
from aggregator.prefilter import may_hold_ignoring_case

TITLE_GOOD = (20, 120)
TITLE_OK = (10, 200)
EXCERPT_LONG = 100
EXCERPT_MEDIUM = 40
SMALL_IMAGE = (300, 200)
SOURCE_WEIGHT_SCALE = 15
CORROBORATION_PER_PROVIDER = 5
CORROBORATION_CAP = 20
CLICKBAIT_POINTS = -8
CLICKBAIT_CAP = -16

CLICKBAIT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        ("won't believe", r"\byou won['\u2019]?t believe\b"),
        ("!!!", r"[!?]{2,}"),
        ("one trick", r"\bth(?:is|e) one (?:\w+ )?trick\b"),
        ("listicle", r"^\s*\d+\s+(?:things|reasons|ways|secrets|facts|tricks|signs)\b"),
        ("what happened next", r"\bwhat happen(?:ed|s) next\b"),
        ("blow your mind", r"\bblow your mind\b"),
        ("shocking", r"\b(?:shocking|jaw-dropping|mind-blowing)\b"),
        ("hate him", r"\b(?:doctors|experts) hate\b"),
    )
)
BOILERPLATE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(?:we|this (?:site|website)) uses? cookies\b",
        r"\baccept (?:all )?cookies\b",
        r"\bcookie (?:policy|settings|preferences|consent)\b",
        r"\b(?:enable|turn on) javascript\b",
        r"\bjavascript is (?:disabled|required|not enabled)\b",
        r"\b(?:subscribe|sign in|log in|register) to (?:continue|read)\b",
        r"\balready a subscriber\b",
        r"\b(?:disable|turn off) (?:your )?ad ?blocker\b",
        r"\byour browser (?:is not supported|does not support)\b",
        r"\b(?:access denied|page not found|403 forbidden|404 not found)\b",
    )
)


@dataclass(frozen=True)
class QualityScore:
    """A clamped 0–100 score and the parts that made it."""

    score: int
    reasons: tuple[QualityReason, ...]


def score_quality(
    record: Record,
    *,
    now: datetime,
    source_weight: float = 1.0,
    providers_in_story: int = 1,
    is_near_duplicate: bool = False,
) -> QualityScore:
    """Score `record` from completeness, text quality, date sanity, source, story and penalties.

    Deterministic: the same record and arguments always give the same score and reasons.
    """
    reasons = (
        _title_part(record),
        _excerpt_part(record),
        _date_part(record, now),
        _image_part(record),
        _provider_part(record),
        _title_length_part(record.title),
        _excerpt_length_part(record.excerpt),
        _caps_part(record.title),
        _clickbait_part(record.title),
        _source_part(source_weight),
        _corroboration_part(providers_in_story),
        _duplicate_part(is_near_duplicate),
        _link_part(record.web_url),
    )
    total = sum(r.points for r in reasons)
    return QualityScore(score=max(0, min(100, total)), reasons=reasons)


def is_publishable(score: QualityScore, *, threshold: int, is_duplicate: bool) -> bool:
    """True when the score reaches the configured threshold and the record is no duplicate."""
    return score.score >= threshold and not is_duplicate


def _title_part(record: Record) -> QualityReason:
    if record.title.strip():
        return QualityReason("title", 12, "has a title")
    return QualityReason("title", 0, "no title")


_ANY_BOILERPLATE = re.compile(
    "|".join(f"(?:{p.pattern})" for p in BOILERPLATE_PATTERNS), re.IGNORECASE
)  # one pass instead of one per pattern: a third of the time


# Every match of a boilerplate pattern holds one of these (lower-cased).
_BOILERPLATE_WORDS = (
    "cookie",
    "javascript",
    "to continue",
    "to read",
    "subscriber",
    "blocker",
    "browser",
    "denied",
    "not found",
    "forbidden",
)


def is_boilerplate(text: str) -> bool:
    """True when `text` reads like a cookie, paywall, JavaScript or error notice.

    Most texts hold none of the words the patterns need: substring searches rule them
    out (~1 us) before the pattern runs (~25 us for an excerpt)."""
    if not may_hold_ignoring_case(text, _BOILERPLATE_WORDS):
        return False
    return _ANY_BOILERPLATE.search(text) is not None


def _excerpt_part(record: Record) -> QualityReason:
    excerpt = record.excerpt.strip()
    if not excerpt:
        return QualityReason("excerpt", 0, "no excerpt")
    if is_boilerplate(excerpt):
        return QualityReason("excerpt", -10, "excerpt is boilerplate (cookie/paywall/script)")
    if excerpt.casefold() == record.title.strip().casefold():
        return QualityReason("excerpt", 2, "excerpt only repeats the title")
    return QualityReason("excerpt", 10, "has an excerpt")


def _date_part(record: Record, now: datetime) -> QualityReason:
    if record.published is None:
        return QualityReason("date", 0, "no publication date")
    published = to_utc(record.published)
    if published > to_utc(now) + DEFAULT_SKEW:
        return QualityReason("date", -15, f"date {published:%Y-%m-%d %H:%M} is in the future")
    if published < EARLIEST_PLAUSIBLE:
        return QualityReason("date", -15, f"date {published:%Y-%m-%d} is implausibly old")
    return QualityReason("date", 8, f"plausible date {published:%Y-%m-%d}")


def _image_part(record: Record) -> QualityReason:
    if not record.images:
        return QualityReason("image", 0, "no lead image")
    image = record.images[0]
    if image.width is None or image.height is None:
        return QualityReason("image", 6, "lead image without size")
    size = f"{image.width}×{image.height}"
    if image.width < SMALL_IMAGE[0] or image.height < SMALL_IMAGE[1]:
        return QualityReason("image", 4, f"small lead image {size}")
    return QualityReason("image", 10, f"lead image with size {size}")


def _provider_part(record: Record) -> QualityReason:
    if record.provider.name.strip():
        return QualityReason("provider", 5, f"provider {record.provider.name}")
    return QualityReason("provider", 0, "no provider name")


def _title_length_part(title: str) -> QualityReason:
    length = len(title.strip())
    if TITLE_GOOD[0] <= length <= TITLE_GOOD[1]:
        return QualityReason(
            "title_length", 6, f"title length {length} in {TITLE_GOOD[0]}–{TITLE_GOOD[1]}"
        )
    if TITLE_OK[0] <= length <= TITLE_OK[1]:
        return QualityReason("title_length", 2, f"title length {length} is borderline")
    return QualityReason(
        "title_length", -5, f"title length {length} outside {TITLE_OK[0]}–{TITLE_OK[1]}"
    )


def _excerpt_length_part(excerpt: str) -> QualityReason:
    length = len(excerpt.strip())
    if length >= EXCERPT_LONG:
        return QualityReason("excerpt_length", 6, f"excerpt of {length} characters")
    if length >= EXCERPT_MEDIUM:
        return QualityReason("excerpt_length", 3, f"short excerpt of {length} characters")
    return QualityReason("excerpt_length", 0, f"excerpt of {length} characters is too short")


def is_all_caps(title: str) -> bool:
    """True for shouting titles: at least 10 letters and 80 % or more of them upper case."""
    if sum(map(str.isupper, title)) < 8:  # 80 % of the 10 letters needed: most titles end here
        return False
    letters = [ch for ch in title if ch.isalpha() and (ch.isupper() or ch.islower())]
    return len(letters) >= 10 and sum(ch.isupper() for ch in letters) >= 0.8 * len(letters)


def _caps_part(title: str) -> QualityReason:
    if is_all_caps(title):
        return QualityReason("caps", -10, "title is in all caps")
    return QualityReason("caps", 0, "title is not all caps")


def clickbait_hits(title: str) -> list[str]:
    """The labels of the clickbait patterns that `title` matches."""
    return [label for label, pattern in CLICKBAIT_PATTERNS if pattern.search(title)]


def _clickbait_part(title: str) -> QualityReason:
    hits = clickbait_hits(title)
    if not hits:
        return QualityReason("clickbait", 0, "no clickbait pattern")
    points = max(CLICKBAIT_CAP, CLICKBAIT_POINTS * len(hits))
    return QualityReason("clickbait", points, "clickbait: " + ", ".join(hits))


def _source_part(weight: float) -> QualityReason:
    clamped = max(0.0, min(2.0, weight))
    points = round((clamped - 1.0) * SOURCE_WEIGHT_SCALE)
    return QualityReason("source_weight", points, f"source weight {clamped:g} (1 is neutral)")


def _corroboration_part(providers: int) -> QualityReason:
    extra = max(0, providers - 1)
    points = min(CORROBORATION_CAP, CORROBORATION_PER_PROVIDER * extra)
    return QualityReason("corroboration", points, f"{extra} other provider(s) in the story")


def _duplicate_part(is_near_duplicate: bool) -> QualityReason:
    if is_near_duplicate:
        return QualityReason("near_duplicate", -20, "near-duplicate of another record")
    return QualityReason("near_duplicate", 0, "not a near-duplicate")


def _link_part(web_url: str) -> QualityReason:
    if web_url.startswith(("http://", "https://")):
        return QualityReason("link", 0, "has a web link")
    return QualityReason("link", -25, "missing or invalid link")
