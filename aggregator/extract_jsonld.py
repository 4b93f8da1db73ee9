"""JSON-LD (schema.org) reading for page extraction: plain dicts in, plain values out.

Pages embed one or more ``<script type="application/ld+json">`` blocks holding an object,
a list of objects, or an ``@graph``. The article object is the one whose ``@type`` is an
article kind; a WebPage's ``mainEntity`` is followed to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

JsonObject = dict[str, object]

ARTICLE_TYPES = frozenset(
    t.lower()
    for t in (
        "Article NewsArticle BlogPosting ReportageNewsArticle AnalysisNewsArticle "
        "OpinionNewsArticle ReviewNewsArticle BackgroundNewsArticle AskPublicNewsArticle "
        "LiveBlogPosting TechArticle ScholarlyArticle SatiricalArticle Report Posting "
        "SocialMediaPosting DiscussionForumPosting Review VideoObject Recipe"
    ).split()
)
_PAGE_TYPES = frozenset({"webpage", "itempage", "collectionpage", "aboutpage", "medicalwebpage"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_WRAPPER = re.compile(r"^\s*(?:<!--|//\s*<!\[CDATA\[|<!\[CDATA\[)|(?:-->|//\s*\]\]>|\]\]>)\s*$")
_MAX_OBJECTS = 200


def parse_jsonld_blocks(blocks: list[str]) -> list[JsonObject]:
    """All JSON objects of the blocks, flattened (lists, ``@graph``, ``mainEntity``)."""
    objects: list[JsonObject] = []
    for block in blocks:
        data = _loads(block)
        if data is not None:
            objects.extend(_flatten(data))
        if len(objects) >= _MAX_OBJECTS:
            break
    return objects[:_MAX_OBJECTS]


def _unwrapped(block: str) -> str:
    """The JSON text of a script block: HTML comment or CDATA wrappers and a trailing ";"
    taken off. The wrapper pattern runs only on blocks holding what every wrapper holds
    ("<!", "-->" or "]]>"): its closing alternatives are tried at every position."""
    text = block.strip()
    if "<!" in text or "-->" in text or "]]>" in text:
        text = _WRAPPER.sub("", text).strip()
    return text.rstrip(";")


def _loads(block: str) -> object | None:
    text = _unwrapped(block)
    if not text:
        return None
    for candidate in (text, _CONTROL.sub(" ", text)):
        try:
            data: object = json.loads(candidate, strict=False)
            return data
        except (ValueError, RecursionError):
            continue
    return None


def _flatten(data: object) -> Iterator[JsonObject]:
    stack: list[object] = [data]
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[:0] = item
        elif isinstance(item, dict):
            yield item
            for key in ("@graph", "mainEntity", "mainEntityOfPage"):
                nested = item.get(key)
                if isinstance(nested, dict | list):
                    stack.append(nested)


def types_of(obj: JsonObject) -> set[str]:
    """The lowercased ``@type`` names of `obj` (``@type`` may be a string or a list)."""
    raw = obj.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return {name.rsplit("/", 1)[-1].lower() for name in names if isinstance(name, str)}


def article_objects(objects: list[JsonObject]) -> list[JsonObject]:
    """Article-kind objects first, then web pages (which often carry the same fields)."""
    articles = [obj for obj in objects if types_of(obj) & ARTICLE_TYPES]
    pages = [obj for obj in objects if types_of(obj) & _PAGE_TYPES]
    return articles + pages


def first_string(objects: list[JsonObject], key: str) -> str | None:
    """The first non-empty string (or first string of a list) under `key`."""
    for obj in objects:
        value = obj.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str) and value.strip():
            return value
    return None


def publisher_name(objects: list[JsonObject]) -> str | None:
    """The name of the article's publisher, else of an Organization/NewsMediaOrganization."""
    for obj in article_objects(objects):
        publisher = obj.get("publisher")
        if isinstance(publisher, list) and publisher:
            publisher = publisher[0]
        if isinstance(publisher, dict):
            name = publisher.get("name")
            if isinstance(name, str) and name.strip():
                return name
    for obj in objects:
        if types_of(obj) & {"newsmediaorganization", "organization", "website"}:
            name = obj.get("name")
            if isinstance(name, str) and name.strip():
                return name
    return None


def image_entries(objects: list[JsonObject]) -> list[tuple[str, object, object]]:
    """(url, width, height) of the article images; width/height as found (maybe None)."""
    found: list[tuple[str, object, object]] = []
    for obj in article_objects(objects):
        raw = obj.get("image")
        if raw is None:
            raw = obj.get("thumbnailUrl")
        for item in raw if isinstance(raw, list) else [raw]:
            if isinstance(item, str):
                found.append((item, None, None))
            elif isinstance(item, dict):
                url = item.get("url") or item.get("contentUrl") or item.get("@id")
                if isinstance(url, str):
                    found.append((url, item.get("width"), item.get("height")))
        if found:
            break
    return found
