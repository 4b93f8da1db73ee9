"""Linking features of one item: what `StoryIndex` derives from its text, computed once.

    title / excerpt / text (or, with none, the URL's slug) → weighted terms   (stories_features)
                                                          → entity-like tokens (stories_entities)

Pure and deterministic, so the result is the same in any process: a crawl computes it in
its worker processes (`worktasks.build_source_batch`) and hands it to the linker on the
`LinkItem`; items without it (restored after a restart, imports, the enrich job) get it
computed by the index itself.
"""

from __future__ import annotations

from aggregator.stories_entities import extract_entities
from aggregator.stories_features import extract_terms, slug_title
from aggregator.stories_types import LinkFeatures, LinkItem


def link_features(title: str, excerpt: str, text: str, web_url: str) -> LinkFeatures:
    """The linking features of an item with this text and URL."""
    if not (title or excerpt or text):
        title = slug_title(web_url)
    terms = extract_terms(title, excerpt, text)
    entities = extract_entities(title, excerpt, text)
    return LinkFeatures(tuple(terms.items()), tuple(entities.items()))


def features_of(item: LinkItem) -> LinkFeatures:
    """The item's precomputed features, or them computed now."""
    if item.features is not None:
        return item.features
    return link_features(item.title, item.excerpt, item.text, item.web_url)
