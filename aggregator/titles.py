"""Headline clean-up shared by page extraction and the record merge step.

Pages decorate their `<title>` (and sometimes og:title) with the outlet's name:
``Headline - Outlet``, ``Headline | Outlet``, ``Headline — Outlet``, ``Outlet: Headline``.
`strip_site_name` removes that decoration when it can tell the segment names the site,
from the site name or the domain, and otherwise leaves the headline alone.
`prefer_reference` trims other decorations (a section, a kicker, a bracketed note) when
another source of the same page (its `<h1>`, its cleaned `<title>`) confirms what the
headline is. `prefer_visible_headline` takes the page's `<h1>` over a metadata title that
says the same story in other words, and `confirmed_h1` picks, of several `<h1>`s, the one
that the metadata titles confirm (not the logo's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from aggregator.text import clean_inline

_SEPARATORS = r"\||｜|--|-|—|–|·|•|::|/|~"
# Spaced separators split anywhere; hyphenated words and times stay intact.
_SPLIT = re.compile(rf"(\s+(?:{_SEPARATORS}|：)\s+)")
# Unspaced separators (common in CJK titles) only split off a segment naming the site.
_LOOSE_SUFFIX = re.compile(rf"^(.+?)\s*(?:{_SEPARATORS}|:|：|_)\s*([^|｜:：_]+)$")
_PREFIX = re.compile(rf"^(.{{2,60}}?)(?:\s*[:：]|\s+(?:{_SEPARATORS}))\s+(.+)$")
_REFERENCE_SPLIT = re.compile(rf"(\s+(?:{_SEPARATORS}|：)\s+|[:：]\s+)")
_NON_WORD = re.compile(r"[\W_]+")
_BRACKETED_TAIL = re.compile(r"^(.*\S)\s*[(\[][^()\[\]]{1,40}[)\]]$")
_WORD = re.compile(r"\w{2,}")
_TIGHT_SEPARATORS = frozenset("|｜-—–·•/~_:：")
_MIN_TIGHT_REFERENCE = 8
MIN_HEADLINE_WORDS = 5
MAX_TITLE_CHARS = 1000  # longer than this, a title or an <h1> is not a headline
_MAX_SEGMENTS = 16  # separator-delimited segments of a title that `prefer_reference` weighs
_MAX_SITE_WORDS = 6
_MIN_HEADLINE_CHARS = 8


def strip_site_name(title: str, site_name: str | None, domain: str | None = None) -> str:
    """Remove a site-name suffix or prefix from `title`; the title stays whole otherwise.

    A segment names the site when, compared by letters and digits only and ignoring case,
    it equals `site_name` or the main label of `domain` (the registrable domain, e.g.
    ``ipa.go.jp``), or it starts or ends with one of
    them word-wise ("CNN Politics"), or is the start or end of the site name. The headline
    left must keep two words or eight characters.
    """
    cleaned = clean_inline(title)
    keys = _site_keys(site_name, domain)
    if not cleaned or not keys or len(cleaned) > MAX_TITLE_CHARS:
        return cleaned  # past that length not a decorated headline, and the search is quadratic
    for strip in (_strip_suffixes, _strip_loose_suffix, _strip_prefix):
        stripped = strip(cleaned, keys)
        if stripped != cleaned:
            return stripped
    return cleaned


def prefer_reference(title: str, references: Iterable[str | None]) -> str:
    """The part of `title` that another source confirms, when the rest is decoration.

    ``Opinion | Headline`` or ``Headline (Published 2016)`` with an ``<h1>`` reading
    ``Headline`` gives ``Headline``. The reference must be a run of whole
    separator-delimited segments, longer than what it leaves out, or all but a short
    bracketed tail.
    """
    if len(title) > MAX_TITLE_CHARS:
        return title
    wanted = {_key(ref): clean_inline(ref) for ref in references if ref and _key(ref)}
    bracketed = _BRACKETED_TAIL.match(title)
    if bracketed and _key(bracketed.group(1)) in wanted:
        return wanted[_key(bracketed.group(1))]
    tight = _tightly_decorated(clean_inline(title), wanted.values())
    if tight is not None:
        return tight
    parts = _REFERENCE_SPLIT.split(title)
    if len(parts) < 3 or len(parts) > 2 * _MAX_SEGMENTS:  # every span is tried: cubic
        return title
    segments = parts[::2]
    for start in range(len(segments)):
        for end in range(len(segments), start, -1):
            if (start, end) == (0, len(segments)):
                continue
            span = "".join(parts[2 * start : 2 * end - 1]).strip()
            found = wanted.get(_key(span))
            rest = "".join(segments[:start] + segments[end:])
            if found and len(span) > len(rest.strip()):
                return found
    return title


def _tightly_decorated(title: str, references: Iterable[str]) -> str | None:
    """The reference that `title` is, but for a short tail or head set off by a separator
    without spaces (``Headline-Site``, ``Site|Headline``), as CJK titles often are.

    The cut must fall where a reference of at least `_MIN_TIGHT_REFERENCE` characters ends,
    twice as long as what it drops: a hyphenated word (``COVID-19``) is never a reference."""
    for reference in references:
        size = len(reference)
        if not _MIN_TIGHT_REFERENCE <= size < len(title):
            continue
        key = reference.casefold()
        if title[:size].casefold() == key:
            tail = title[size:].strip()
            marker, decoration = tail[:1], tail[1:].strip()
        elif title[-size:].casefold() == key:
            head = title[:-size].strip()
            marker, decoration = head[-1:], head[:-1].strip()
        else:
            continue
        if (
            marker in _TIGHT_SEPARATORS
            and 0 < 2 * len(decoration) <= size
            and len(decoration) <= 40
        ):
            return reference
    return None


def prefer_visible_headline(
    title: str, h1: str | None, metadata: Iterable[str | None], site_words: Iterable[str]
) -> str:
    """The page's `<h1>` instead of `title` when it is this article's own headline.

    Outlets often rewrite a headline for sharing (og:title) or for search (`<title>`);
    the `<h1>` is the one the reader sees. It is taken when it is not part of `title`
    (that is a shortening, which `prefer_reference` judges), has at least
    `MIN_HEADLINE_WORDS` words that are not the site's name, and at least half of those
    words are in the page's `metadata` titles: a section name, the site's name or a
    teaser does not qualify.
    """
    if not h1 or len(h1) > MAX_TITLE_CHARS or _key(h1) in _key(title):
        return title
    site = {word for text in site_words for word in _words(text)}
    words = _words(h1) - site
    if len(words) < MIN_HEADLINE_WORDS:
        return title
    described = set().union(*(_words(text[:MAX_TITLE_CHARS]) for text in metadata if text))
    return clean_inline(h1) if 2 * len(words & described) >= len(words) else title


def confirmed_h1(
    h1s: Sequence[str],
    preferred: str | None,
    metadata: Iterable[str | None],
    site_name: str | None,
    domain: str | None,
) -> str | None:
    """Of a page's `<h1>` texts, the one its `metadata` titles confirm best.

    Pages often put their logo or a section name in an `<h1>` ahead of the headline's.
    An `<h1>` that is part of a metadata title scores most, then by the share of its words
    found in them; one naming the site scores nothing. `preferred` (the caller's default
    pick) stays unless another scores higher.
    """
    if len(h1s) < 2:
        return preferred
    titles = [text[:MAX_TITLE_CHARS] for text in metadata if text]
    keys = [_key(text) for text in titles]
    described = set().union(*(_words(text) for text in titles))
    sites = _site_keys(site_name, domain)

    def score(h1: str) -> float:
        key = _key(h1)
        if not key or len(h1) > MAX_TITLE_CHARS or _names_site(h1, sites):
            return -1.0
        if any(key in other for other in keys):
            return 2.0
        words = _words(h1)
        return len(words & described) / len(words) if words else 0.0

    best = max(h1s, key=score)
    return best if preferred is None or score(best) > score(preferred) else preferred


def _words(text: str) -> set[str]:
    return set(_WORD.findall(clean_inline(text).casefold()))


def _strip_suffixes(title: str, keys: list[tuple[str, ...]]) -> str:
    parts = _SPLIT.split(title)
    # parts alternates text, separator, text, ...; drop trailing site segments.
    while len(parts) >= 3 and _names_site(parts[-1], keys):
        head = "".join(parts[:-2]).strip()
        if not _long_enough(head):
            break
        parts = parts[:-2]
    return "".join(parts).strip()


def _strip_loose_suffix(title: str, keys: list[tuple[str, ...]]) -> str:
    match = _LOOSE_SUFFIX.match(title)
    if not match or not _names_site(match.group(2), keys):
        return title
    head = match.group(1).strip()
    return head if _long_enough(head) else title


def _strip_prefix(title: str, keys: list[tuple[str, ...]]) -> str:
    match = _PREFIX.match(title)
    if match is None or "".join(_tokens(match.group(1))) not in {"".join(k) for k in keys}:
        return title
    rest = match.group(2).strip()
    return rest if _long_enough(rest) else title


def _site_keys(site_name: str | None, domain: str | None) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    if site_name:
        keys.append(_tokens(site_name))
    labels = [lab for lab in (domain or "").lower().split(".") if lab and lab != "www"]
    if labels and not labels[0].isdigit():
        keys.append(_tokens(labels[0]))
        keys.append(("".join(labels),))
    return [key for key in keys if len("".join(key)) >= 2]


def _names_site(segment: str, sites: list[tuple[str, ...]]) -> bool:
    """True when `segment` is the site's name, or a run of its words is, or the reverse."""
    words = _tokens(segment)
    if not words or len(words) > _MAX_SITE_WORDS:
        return False
    joined = "".join(words)
    for site in sites:
        name = "".join(site)
        if joined == name or joined.removeprefix("the") == name.removeprefix("the"):
            return True
        if len(name) >= 3 and name in _edge_runs(words):
            return True
        if len(joined) >= 3 and joined in _edge_runs(site):
            return True
    return False


def _edge_runs(words: tuple[str, ...]) -> set[str]:
    """The words joined from the start or to the end, in every length."""
    runs = set()
    for k in range(1, len(words)):
        runs.add("".join(words[:k]))
        runs.add("".join(words[k:]))
    return runs


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(t for t in _NON_WORD.split(clean_inline(text).casefold()) if t)


def _key(text: str) -> str:
    return _NON_WORD.sub("", clean_inline(text).casefold())


def _long_enough(headline: str) -> bool:
    return len(headline.split()) >= 2 or len(headline) >= _MIN_HEADLINE_CHARS


def strip_short_suffix(title: str, max_words: int = 3) -> str:
    """Drop a last segment of at most `max_words` words after a spaced separator.

    Meant for a document `<title>` whose site name is unknown, where such a tail is almost
    always the outlet or a section; at least three words must remain.
    """
    cleaned = clean_inline(title)
    parts = _SPLIT.split(cleaned)
    if len(parts) < 3 or len(parts[-1].split()) > max_words:
        return cleaned
    head = "".join(parts[:-2]).strip()
    return head if len(head.split()) >= 3 else cleaned
