"""The dedupe ladder's pure parts: normalised keys and the "richer record wins" merge.

The same article reached twice is one record. The store matches, in order:

    1. same guid within a source          4. same text fingerprint (any source)
    2. same canonical webUrl              5. same provider, near-identical title,
    3. AMP URL ↔ canonical, either way       published within DUPLICATE_WINDOW

Steps 4 and 5 use the keys below. "Near-identical" means equal after normalisation: case,
Unicode form, quotes and dashes, punctuation and whitespace are ignored, so "Fed raises
rates — again" and "Fed Raises Rates: Again!" are one title while a changed word is not.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.models import Image, Record
from aggregator.prefilter import EDGE_PUNCTUATION

DUPLICATE_WINDOW = timedelta(hours=72)
MIN_FINGERPRINT_CHARS = 200
BODY_CHARS = 1000  # normalised characters from which a text is a body, not a lead

_WORD = re.compile(r"[^\W_]+")


def normalise_words(text: str) -> str:
    """Lower-case words of `text` joined by single spaces, punctuation dropped.

    The words are the runs of `[^\\W_]` (letters and digits), which is what
    `re.sub(r"[\\W_]+", " ", text).strip()` leaves. Whitespace is never a word character,
    so the text is split on it first: a chunk that `str.isalnum` accepts (the same
    characters as the pattern) is a word whole, and so is one with punctuation at its
    edges only ("word," "(word)"); only the others are searched: 87 -> 52 us for a
    2,000-character article text, normalisation and case folding included.
    """
    words: list[str] = []
    for chunk in unicodedata.normalize("NFKC", text).casefold().split():
        if chunk.isalnum():
            words.append(chunk)
            continue
        inner = chunk.strip(EDGE_PUNCTUATION)  # "word," or "(word)": one word
        if inner.isalnum():
            words.append(inner)
        else:
            words += _WORD.findall(chunk)
    return " ".join(words)


def title_key(title: str) -> str:
    """The key under which two titles count as near-identical ("" for an empty title)."""
    return normalise_words(title)


@functools.lru_cache(maxsize=256)
def text_fingerprint(title: str, excerpt: str, text: str) -> str:
    """A hash of the article's own words: its body, or, when all there is is a lead (an
    excerpt, or a text shorter than `BODY_CHARS`), that lead under its title; "" when there
    is too little text to be sure.

    A lead alone does not make an article: outlets run the same wire lead under headlines
    of their own, and those are different articles, to be linked into one story, not
    merged into one record (which would lose all but one of their URLs).

    Cached for a batch's worth of records: storing one asks for it three times (identity
    lookup, its match, its row), and normalising a page's text is most of the cost."""
    words = normalise_words(text or excerpt)
    if len(words) < MIN_FINGERPRINT_CHARS:
        return ""
    if len(words) < BODY_CHARS:
        words = f"{normalise_words(title)}\n{words}"
    return hashlib.sha256(words[:4000].encode("utf-8")).hexdigest()


def richer(stored: Record, incoming: Record) -> Record:
    """`incoming` with each public field taken from `stored` where the stored one is richer.

    Identity (webUrl, provenance) stays the incoming record's; the caller decides which
    identity the row keeps. The feed categories are the union of both (stored ones first),
    so a topic rule that maps a category of either copy still applies on `retag`.
    """
    categories = tuple(
        dict.fromkeys((*stored.provenance.categories, *incoming.provenance.categories))
    )
    return replace(
        incoming,
        title=incoming.title or stored.title,
        excerpt=_longer(incoming.excerpt, stored.excerpt),
        published=_earliest(incoming, stored),
        amp_web_url=incoming.amp_web_url or stored.amp_web_url,
        cdn_amp_web_url=incoming.cdn_amp_web_url or stored.cdn_amp_web_url,
        images=_better_images(incoming, stored),
        text=_longer(incoming.text, stored.text),
        topics=incoming.topics or stored.topics,
        provenance=replace(incoming.provenance, categories=categories),
    )


def _longer(first: str, second: str) -> str:
    return second if len(second) > len(first) else first


def _earliest(a: Record, b: Record) -> datetime | None:
    dates = [value for value in (a.published, b.published) if value is not None]
    return min(dates) if dates else None


def _better_images(a: Record, b: Record) -> tuple[Image, ...]:
    def sized(record: Record) -> int:
        return sum(1 for image in record.images if image.width and image.height)

    return b.images if (sized(b), len(b.images)) > (sized(a), len(a.images)) else a.images
