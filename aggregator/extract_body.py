"""Reading the article body: its paragraphs, its first real paragraph, its `<h1>`.

The main container is the element holding the most paragraph text (an ``<article>`` or
``itemprop=articleBody`` gets a bonus); paragraphs inside navigation, asides, footers,
forms and elements whose class or id names boilerplate (cookie banners, newsletters,
share bars, related links) are skipped.
"""

from __future__ import annotations

import itertools
import re

from lxml import etree

from aggregator.extract_doc import text_of
from aggregator.text import clean_inline, cut_at_word

TEXT_LIMIT = 2000
MAX_H1S = 16  # a page's headings weighed as its headline; the rest are not
_MIN_PARAGRAPH = 40
_MIN_LEAD_WORDS = 12
_SKIP_ANCESTORS = frozenset(
    {"nav", "aside", "footer", "form", "header", "figcaption", "figure", "blockquote", "button"}
)
_BOILERPLATE_ATTR = re.compile(
    r"cookie|consent|gdpr|newsletter|subscri|signup|sign-up|promo|share|social|related|"
    r"comment|footer|sidebar|breadcrumb|caption|byline|author|credit|advert|(?:^|[\s_-])ads?(?:$|[\s_-])|"
    r"popup|modal|paywall|disclaimer|copyright|recommend|most-read|nav|menu|tags|meta",
    re.IGNORECASE,
)
_BOILERPLATE_TEXT = re.compile(
    r"cookie|javascript|all rights reserved|©|copyright|sign up|subscribe|newsletter|"
    r"your browser|click here|terms of (?:use|service)|privacy policy|advertisement",
    re.IGNORECASE,
)
_MAX_PARAGRAPHS = 3000


def _paragraphs(root: etree._Element) -> list[tuple[etree._Element, str]]:
    """Non-boilerplate `<p>` elements with their clean text, in document order."""
    found: list[tuple[etree._Element, str]] = []
    verdicts: dict[etree._Element, bool] = {}
    for count, element in enumerate(root.iter("p")):
        if count >= _MAX_PARAGRAPHS:
            break
        if _in_boilerplate(element, verdicts):
            continue
        text = clean_inline(text_of(element).replace("\u00a0", " "))
        if text:
            found.append((element, text))
    return found


def _in_boilerplate(element: etree._Element, verdicts: dict[etree._Element, bool]) -> bool:
    """Whether the nearest deciding element at or above `element` makes it boilerplate:
    a skipped tag or a boilerplate class or id says yes, `<article>` or `<body>` says no.

    `verdicts` remembers the answer for every element walked, which the walk from any of
    them would reach as well: the paragraphs of one container are decided once."""
    walked: list[etree._Element] = []
    verdict = False
    for ancestor in itertools.chain((element,), element.iterancestors()):
        known = verdicts.get(ancestor)
        if known is not None:
            verdict = known
            break
        walked.append(ancestor)
        if ancestor.tag in _SKIP_ANCESTORS:
            verdict = True
            break
        if ancestor.tag in ("article", "body"):
            break
        marker = f"{ancestor.get('class', '')} {ancestor.get('id', '')}"
        if marker.strip() and _BOILERPLATE_ATTR.search(marker):
            verdict = True
            break
    for seen in walked:
        verdicts[seen] = verdict
    return verdict


def _main_container(paragraphs: list[tuple[etree._Element, str]]) -> etree._Element | None:
    scores: dict[etree._Element, float] = {}
    for element, text in paragraphs:
        parent = element.getparent()
        if parent is None or len(text) < _MIN_PARAGRAPH:
            continue
        scores[parent] = scores.get(parent, 0.0) + len(text)
        grandparent = parent.getparent()
        if grandparent is not None:
            scores[grandparent] = scores.get(grandparent, 0.0) + len(text) / 2
    if not scores:
        return None
    return max(scores, key=lambda e: scores[e] * _bonus(e))


def _bonus(element: etree._Element) -> float:
    if element.tag == "article" or (element.get("itemprop") or "").lower() == "articlebody":
        return 1.5
    return 1.0


def main_paragraphs(root: etree._Element) -> list[str]:
    """The article's paragraphs (text), from its main container when one stands out."""
    paragraphs = _paragraphs(root)
    container = _main_container(paragraphs)
    if container is None:
        return [text for _, text in paragraphs if len(text) >= _MIN_PARAGRAPH]
    return [
        text for element, text in paragraphs if any(a is container for a in element.iterancestors())
    ]


def body_text(paragraphs: list[str], limit: int = TEXT_LIMIT) -> str:
    """The first `limit` characters of the paragraphs, cut at a word boundary."""
    return cut_at_word(" ".join(paragraphs), limit)


def first_real_paragraph(paragraphs: list[str]) -> str | None:
    """The first paragraph that reads like prose rather than a label or a notice."""
    for text in paragraphs:
        if len(text.split()) >= _MIN_LEAD_WORDS and not _BOILERPLATE_TEXT.search(text):
            return text
    return None


def find_h1(root: etree._Element) -> tuple[str | None, list[str]]:
    """The text of the first non-empty `<h1>`, preferring one inside `<article>`, and the
    texts of the first `MAX_H1S` of them in document order."""
    found: str | None = None
    texts: list[str] = []
    for element in root.iter("h1"):
        text = clean_inline(text_of(element))
        if not text:
            continue
        if len(texts) < MAX_H1S:
            texts.append(text)
        if found is None and any(a.tag == "article" for a in element.iterancestors()):
            found = text
        if found is not None and len(texts) >= MAX_H1S:
            break
    return found or (texts[0] if texts else None), texts
