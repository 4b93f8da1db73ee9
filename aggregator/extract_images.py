"""The lead-image chain of page extraction.

og:image (with its structured width/height/alt) → JSON-LD image → twitter:image →
``<link rel=image_src>``. URLs are made absolute; only http(s) URLs survive, once each.
"""

from __future__ import annotations

import math
import re

from aggregator.extract_doc import Page
from aggregator.extract_jsonld import image_entries
from aggregator.models import Image, image_side
from aggregator.text import clean_inline

_OG_URL_KEYS = frozenset({"og:image", "og:image:url"})
_DIGITS = re.compile(r"^\s*(\d{1,5})(?:\.\d+)?\s*(?:px)?\s*$")
_MAX_IMAGES = 10


class _OgImage:
    """One og:image group while reading the meta tags in order."""

    __slots__ = ("alt", "height", "secure", "url", "width")

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self.secure: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.alt: str | None = None


def find_images(page: Page) -> tuple[Image, ...]:
    """All lead-image candidates in chain order, absolute, http(s) only, no duplicates."""
    found: list[Image] = []
    seen: set[str] = set()
    for candidate in (*_og_images(page), *_jsonld_images(page), *_other_images(page)):
        url = page.absolute(candidate.url)
        if url and url not in seen and len(found) < _MAX_IMAGES:
            seen.add(url)
            found.append(Image(url, candidate.width, candidate.height, candidate.title))
    return tuple(found)


def _og_images(page: Page) -> list[Image]:
    groups: list[_OgImage] = []
    for key, value in page.meta_order:
        if key in _OG_URL_KEYS:
            if not groups or groups[-1].url is not None:
                groups.append(_OgImage(value))
            else:
                groups[-1].url = value
        elif key.startswith("og:image:"):
            if not groups:
                groups.append(_OgImage())
            _set_structured(groups[-1], key[len("og:image:") :], value)
    return [
        Image(_pick_url(group), group.width, group.height, group.alt)
        for group in groups
        if group.url or group.secure
    ]


def _set_structured(group: _OgImage, name: str, value: str) -> None:
    if name == "secure_url":
        group.secure = value
    elif name == "width":
        group.width = to_dimension(value)
    elif name == "height":
        group.height = to_dimension(value)
    elif name == "alt":
        group.alt = clean_inline(value) or None


def _pick_url(group: _OgImage) -> str:
    url = (group.url or "").strip()
    if not url or not url.lower().startswith(("http", "/")):
        return group.secure or url
    return url


def _jsonld_images(page: Page) -> list[Image]:
    return [
        Image(url, to_dimension(width), to_dimension(height))
        for url, width, height in image_entries(page.jsonld)
    ]


def _other_images(page: Page) -> list[Image]:
    urls = [
        *page.meta.get("twitter:image", ()),
        *page.meta.get("twitter:image:src", ()),
        *page.links.get("image_src", ()),
    ]
    return [Image(url) for url in urls]


def to_dimension(value: object) -> int | None:
    """A positive pixel size from 1200, "1200", "1200px" or {"value": 1200}; else None."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value):
        number = int(value)
    elif isinstance(value, str) and (match := _DIGITS.match(value)):
        number = int(match.group(1))
    else:
        return None
    return image_side(number)
