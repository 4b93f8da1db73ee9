"""The merge step: one feed entry and its page's metadata → one `Record`.

Field by field, the better value wins::

    webUrl      page canonical when on the entry's (or page's) site, else entry link, else page URL
    title       feed title (page title when the feed's is missing or cut "…"), site name stripped
    excerpt     feed summary (page description when it is missing, cut, or much shorter)
    published   first plausible of entry.published, page.published, entry.updated
    ampWebUrl   page amphtml link, absolute and canonical; cdnAmpWebUrl derived from it
    type        page og:type when it names content ("article", "video", …), else the source's
    provider    og:site_name, else source config, else a name made from the domain
    images      page images (they carry sizes), then feed images not already present; at most 5

The entry's feed categories go to the provenance (topic rules read them there).
Scores, topics, stories and seals are filled by later steps.
"""

from __future__ import annotations

from datetime import datetime

from aggregator.dates import first_plausible
from aggregator.models import Image, PageMetadata, Provenance, Provider, RawEntry, Record
from aggregator.normalize import (
    amp_cache_url,
    canonical_url,
    escape_url_controls,
    join_url,
    make_excerpt,
    provider_domain,
    provider_name_from_domain,
    same_site,
)
from aggregator.settings import SourceSettings
from aggregator.text import clean_inline, cut_at_word, html_to_text
from aggregator.titles import strip_site_name

MAX_IMAGES = 5
MAX_TITLE_LENGTH = 300
"""A longer title (or image title) is cut like an excerpt: the longest labelled headline
of the eval sets has 165 characters, and every related list carries a copy of each."""
MAX_PROVIDER_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 100_000
"""The plain text kept with a record (for topics, linking and deduplication) ends at the
last space before this many characters: about 15,000 words, longer than any article of
the eval sets, while a 12 MB feed summary would otherwise be pickled, fingerprinted,
scanned for topics and stored whole."""
# A feed summary shorter than this share of the page description counts as a teaser.
SHORT_SUMMARY_RATIO = 0.5
_TRUNCATION_MARKS = ("…", "...")
_VIDEO_PREFIX = "video."
_AUDIO_PREFIX = "music."
_CONTENT_TYPES = frozenset({"article", "video", "audio", "podcast", "gallery", "liveblog"})


def build_record(
    entry: RawEntry | None,
    page: PageMetadata | None,
    source: SourceSettings,
    *,
    feed_url: str,
    fetched_at: datetime,
    now: datetime,
) -> Record | None:
    """Merge a feed entry and its page metadata into a Record (either may be missing).

    Returns None when neither gives a usable http(s) URL or a non-empty title: such an
    item cannot be shown or identified. Quality, heat, topics and related are left at their
    "not computed" values for the later steps.
    """
    web_url = choose_web_url(entry, page)
    domain = provider_domain(web_url)
    name = choose_provider_name(page, source, domain)
    title = choose_title(entry, page, name, domain)
    if not web_url or not title:
        return None
    amp_url = choose_amp_url(page)
    return Record(
        title=title,
        web_url=web_url,
        provider=Provider(name=name, domain=domain),
        category=source.category,
        excerpt=choose_excerpt(entry, page),
        published=first_plausible(_dates(entry, page), now),
        amp_web_url=amp_url,
        cdn_amp_web_url=amp_cache_url(amp_url),
        type=choose_type(page, source),
        images=merge_images(entry, page, title),
        provenance=Provenance(
            source_name=source.name,
            feed_url=feed_url,
            guid=(entry.guid if entry else "") or web_url,
            fetched_at=fetched_at,
            categories=entry.categories if entry else (),
        ),
        text=cut_at_word(
            (page.text if page else "") or (html_to_text(entry.summary) if entry else ""),
            MAX_TEXT_LENGTH,
        ),
    )


def choose_web_url(entry: RawEntry | None, page: PageMetadata | None) -> str:
    """The canonical article URL: same-site page canonical, else entry link, else page URL."""
    link = canonical_url(entry.link) if entry else ""
    page_url = canonical_url(page.url) if page else ""
    if page and page.canonical_url:
        canonical = canonical_url(join_url(page.url, page.canonical_url.strip()))
        if same_site(canonical, link) or same_site(canonical, page_url):
            return canonical
    return link or page_url


def choose_title(
    entry: RawEntry | None, page: PageMetadata | None, provider_name: str, domain: str
) -> str:
    """The feed title unless it is missing or cut short, else the page title; site name
    removed, and cut past `MAX_TITLE_LENGTH` characters."""
    feed_title = clean_inline(entry.title) if entry else ""
    page_title = clean_inline(page.title or "") if page else ""
    title = feed_title
    if not feed_title or (page_title and feed_title.endswith(_TRUNCATION_MARKS)):
        title = page_title or feed_title
    if not title:
        return ""
    stripped = strip_site_name(title, provider_name or None, domain or None).strip()
    return make_excerpt(stripped, MAX_TITLE_LENGTH)


def choose_excerpt(entry: RawEntry | None, page: PageMetadata | None) -> str:
    """The feed summary unless missing, cut, a repeat of the title, or a teaser; then shortened."""
    summary = html_to_text(entry.summary) if entry else ""
    description = html_to_text(page.excerpt or "") if page else ""
    if entry and summary == clean_inline(entry.title):
        summary = ""
    use_page = bool(description) and (
        not summary
        or (entry is not None and entry.summary_truncated)
        or len(summary) < SHORT_SUMMARY_RATIO * len(description)
    )
    return make_excerpt(description if use_page else summary)


def choose_amp_url(page: PageMetadata | None) -> str:
    """The page's amphtml link made absolute and canonical (the AMP query is kept), or ""."""
    if page is None or not page.amp_url:
        return ""
    return canonical_url(join_url(page.url, page.amp_url.strip()))


def choose_type(page: PageMetadata | None, source: SourceSettings) -> str:
    """og:type when it names a content type (``video.*`` → video), else the source's type."""
    og_type = (page.type or "").strip().lower() if page else ""
    if og_type.startswith(_VIDEO_PREFIX):
        return "video"
    if og_type.startswith(_AUDIO_PREFIX):
        return "audio"
    return og_type if og_type in _CONTENT_TYPES else source.type


def choose_provider_name(page: PageMetadata | None, source: SourceSettings, domain: str) -> str:
    """og:site_name, else the source's configured provider, else a name made from the domain.

    An og:site_name past `MAX_PROVIDER_NAME_LENGTH` characters is no site's name."""
    site_name = clean_inline(page.site_name or "") if page else ""
    if len(site_name) > MAX_PROVIDER_NAME_LENGTH:
        site_name = ""
    configured = clean_inline(source.provider or "")
    return site_name or configured or provider_name_from_domain(domain)


def _image_title(title: str | None) -> str:
    return make_excerpt(clean_inline(title or ""), MAX_TITLE_LENGTH)


def merge_images(
    entry: RawEntry | None, page: PageMetadata | None, title: str
) -> tuple[Image, ...]:
    """Page images then new feed images, deduplicated by canonical URL, titled, at most 5.

    Images whose URL is not http(s) (``data:``, relative without a page URL) are dropped.
    """
    base = page.url if page else ""
    candidates = (*(page.images if page else ()), *(entry.images if entry else ()))
    seen: set[str] = set()
    merged: list[Image] = []
    for image in candidates:
        url = escape_url_controls(join_url(base, image.url.strip()))
        key = canonical_url(url)
        if not key or key in seen:
            continue
        seen.add(key)
        merged.append(Image(url, image.width, image.height, _image_title(image.title) or title))
        if len(merged) == MAX_IMAGES:
            break
    return tuple(merged)


def _dates(entry: RawEntry | None, page: PageMetadata | None) -> list[datetime | None]:
    return [
        entry.published if entry else None,
        page.published if page else None,
        entry.updated if entry else None,
    ]
