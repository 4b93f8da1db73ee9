"""The merge step: which of feed entry and page metadata wins, field by field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from aggregator.models import Image, PageMetadata, RawEntry, Record
from aggregator.normalize import amp_cache_url
from aggregator.records import MAX_IMAGES, MAX_TEXT_LENGTH, build_record
from aggregator.settings import SourceSettings

NOW = datetime(2020, 2, 6, 12, 0, tzinfo=UTC)
FETCHED = NOW - timedelta(minutes=1)
FEED_URL = "https://www.clickorlando.com/arc/outboundfeeds/rss/"
LINK = "https://www.clickorlando.com/news/local/2020/02/03/volusia-facial-recognition/"
SUMMARY = (
    "VOLUSIA COUNTY, Fla. – A cutting-edge facial recognition tool called Clearview AI will "
    "help law enforcement officers get one step closer to making arrests."
)
DESCRIPTION = "A facial recognition tool will help deputies, the sheriff says."
SOURCE = SourceSettings(name="click", url=FEED_URL, category="news", type="article")


def entry(**changes: Any) -> RawEntry:
    base = RawEntry(
        guid="click-1",
        link=LINK + "?utm_source=rss&utm_medium=feed",
        title="How Volusia County Sheriff's Office will use facial recognition AI",
        summary=SUMMARY,
        published=datetime(2020, 2, 3, 23, 42, tzinfo=UTC),
        updated=datetime(2020, 2, 4, 8, 0, tzinfo=UTC),
    )
    return replace(base, **changes)


def page(**changes: Any) -> PageMetadata:
    base = PageMetadata(
        url=LINK,
        title="How Volusia County Sheriff's Office will use facial recognition AI - Click Orlando",
        excerpt=DESCRIPTION,
        published=datetime(2020, 2, 3, 23, 40, tzinfo=UTC),
        canonical_url=LINK,
        amp_url=LINK + "?outputType=amp",
        site_name="Click Orlando",
        type="article",
        text="Full article text.",
    )
    return replace(base, **changes)


def build(
    raw: RawEntry | None, meta: PageMetadata | None, source: SourceSettings = SOURCE
) -> Record:
    record = build_record(raw, meta, source, feed_url=FEED_URL, fetched_at=FETCHED, now=NOW)
    assert record is not None
    return record


# --- webUrl --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "meta", "expected"),
    [
        pytest.param(entry(), None, LINK, id="entry link, tracking stripped"),
        pytest.param(
            entry(),
            page(canonical_url="https://clickorlando.com/news/volusia"),
            "https://clickorlando.com/news/volusia",
            id="same-site canonical wins",
        ),
        pytest.param(
            entry(),
            page(canonical_url="https://www.news4jax.com/news/volusia"),
            LINK,
            id="cross-site canonical ignored",
        ),
        pytest.param(
            entry(),
            page(canonical_url="/news/volusia#top"),
            "https://www.clickorlando.com/news/volusia",
            id="relative canonical made absolute",
        ),
        pytest.param(
            entry(link="https://feeds.feedburner.example/~r/click/1"),
            page(canonical_url=LINK + "?utm_campaign=x"),
            LINK,
            id="canonical on the page's site beats a feed proxy link",
        ),
        pytest.param(None, page(canonical_url=None), LINK, id="page URL without an entry"),
        pytest.param(entry(link=""), page(canonical_url=None), LINK, id="page URL without link"),
        pytest.param(
            entry(), page(canonical_url="javascript:void(0)"), LINK, id="unusable canonical"
        ),
    ],
)
def test_web_url_precedence(raw: RawEntry | None, meta: PageMetadata | None, expected: str) -> None:
    assert build(raw, meta).web_url == expected


# --- title ---------------------------------------------------------------------------------

FEED_TITLE = "How Volusia County Sheriff's Office will use facial recognition AI"


@pytest.mark.parametrize(
    ("raw", "meta", "expected"),
    [
        pytest.param(entry(), page(title="Another headline"), FEED_TITLE, id="feed title wins"),
        pytest.param(
            entry(title="How Volusia County Sheriff's Office will…"),
            page(),
            FEED_TITLE,
            id="truncated feed title loses to the page title, site name stripped",
        ),
        pytest.param(
            entry(title="How Volusia County Sheriff's Office will..."),
            page(),
            FEED_TITLE,
            id="three-dot truncation",
        ),
        pytest.param(
            entry(title="Cut short…"), page(title=None), "Cut short…", id="no page title to use"
        ),
        pytest.param(entry(title=""), page(), FEED_TITLE, id="missing feed title"),
        pytest.param(
            entry(title=f"{FEED_TITLE} | Click Orlando"), None, FEED_TITLE, id="feed suffix"
        ),
        pytest.param(
            entry(title="  Sheriff &amp; deputies\n speak  "),
            None,
            "Sheriff & deputies speak",
            id="entities and whitespace cleaned",
        ),
    ],
)
def test_title_precedence(raw: RawEntry | None, meta: PageMetadata | None, expected: str) -> None:
    assert build(raw, meta).title == expected


# --- excerpt -------------------------------------------------------------------------------

LONG_DESCRIPTION = "A facial recognition tool called Clearview AI will help deputies. " * 3


@pytest.mark.parametrize(
    ("raw", "meta", "expected"),
    [
        pytest.param(entry(), page(), SUMMARY, id="feed summary wins"),
        pytest.param(entry(summary=""), page(), DESCRIPTION, id="empty summary"),
        pytest.param(
            entry(summary_truncated=True), page(), DESCRIPTION, id="truncated summary loses"
        ),
        pytest.param(
            entry(summary="Clearview AI."),
            page(excerpt=LONG_DESCRIPTION),
            LONG_DESCRIPTION.strip(),
            id="much shorter summary loses",
        ),
        pytest.param(
            entry(summary=FEED_TITLE), page(), DESCRIPTION, id="summary repeating the title"
        ),
        pytest.param(
            entry(summary="<p>Deputies <b>will</b> use it.</p>"),
            page(excerpt=None),
            "Deputies will use it.",
            id="html summary cleaned",
        ),
        pytest.param(
            entry(summary_truncated=True), page(excerpt=None), SUMMARY, id="nothing better"
        ),
        pytest.param(entry(summary=""), page(excerpt=None), "", id="no excerpt at all"),
    ],
)
def test_excerpt_precedence(raw: RawEntry | None, meta: PageMetadata | None, expected: str) -> None:
    assert build(raw, meta).excerpt == expected


def test_long_excerpt_is_shortened() -> None:
    excerpt = build(entry(summary="word " * 200), None).excerpt
    assert excerpt.endswith(" ...")
    assert len(excerpt) <= 350


def test_a_title_past_300_characters_is_cut_like_an_excerpt() -> None:
    # A 1 MB title was stored whole, and copied into every related list that named it.
    headline = "Storm closes the coast road for a week " * 30_000
    title = build(entry(title=headline), None).title
    assert title.endswith(" ...") and len(title) <= 310
    assert headline.startswith(title.removesuffix(" ..."))
    assert build(entry(title="Storm closes the coast road"), None).title == (
        "Storm closes the coast road"
    )


def test_hostile_lengths_in_page_metadata_are_bounded() -> None:
    long_words = "word " * 100_000
    meta = page(
        site_name=long_words, images=(Image("https://example.com/a.jpg", None, None, long_words),)
    )
    record = build(entry(), meta)
    assert record.provider.name == build(entry(), None).provider.name  # not a 500 kB name
    (image,) = record.images
    assert image.title.endswith(" ...") and len(image.title) <= 310
    too_long = entry(link="https://example.com/" + "a" * 9000)
    assert (
        build_record(too_long, None, SOURCE, feed_url=FEED_URL, fetched_at=FETCHED, now=NOW) is None
    )


def test_the_text_kept_for_linking_ends_at_a_word_before_100_000_characters() -> None:
    # A 12 MB summary was kept whole: pickled twice, fingerprinted, stored and linked.
    text = build(entry(summary="word " * 2_400_000), None).text
    assert 50_000 < len(text) <= MAX_TEXT_LENGTH
    assert text.endswith("word") and set(text.split(" ")) == {"word"}
    long_page = "The coast road stays shut. " * 5_000  # 135,000 characters
    text = build(entry(), page(text=long_page)).text
    assert len(text) <= MAX_TEXT_LENGTH and long_page.startswith(text)
    assert build(entry(), page(text="The coast road stays shut.")).text == (
        "The coast road stays shut."
    )


# --- published -----------------------------------------------------------------------------

FUTURE = NOW + timedelta(days=2)
T_ENTRY = datetime(2020, 2, 3, 23, 42, tzinfo=UTC)
T_PAGE = datetime(2020, 2, 3, 23, 40, tzinfo=UTC)
T_UPDATED = datetime(2020, 2, 4, 8, 0, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("raw", "meta", "expected"),
    [
        pytest.param(entry(), page(), T_ENTRY, id="entry published first"),
        pytest.param(entry(published=None), page(), T_PAGE, id="then page published"),
        pytest.param(entry(published=FUTURE), page(), T_PAGE, id="future entry date skipped"),
        pytest.param(
            entry(published=None), page(published=FUTURE), T_UPDATED, id="then entry updated"
        ),
        pytest.param(
            entry(published=None, updated=None), page(published=None), None, id="none known"
        ),
        pytest.param(
            entry(published=datetime(2020, 2, 3, 18, 42, tzinfo=EST)),
            None,
            T_ENTRY,
            id="converted to UTC",
        ),
    ],
)
def test_published_precedence(
    raw: RawEntry | None, meta: PageMetadata | None, expected: datetime | None
) -> None:
    assert build(raw, meta).published == expected


# --- AMP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amp_url", "expected"),
    [
        (LINK + "?outputType=amp", LINK + "?outputType=amp"),
        (LINK + "?outputType=amp&utm_source=x#a", LINK + "?outputType=amp"),
        ("/amp/news/volusia", "https://www.clickorlando.com/amp/news/volusia"),
        (None, ""),
        ("", ""),
    ],
)
def test_amp_urls(amp_url: str | None, expected: str) -> None:
    record = build(entry(), page(amp_url=amp_url))
    assert record.amp_web_url == expected
    assert record.cdn_amp_web_url == amp_cache_url(expected)


def test_cdn_amp_url_matches_the_seed_form() -> None:
    record = build(entry(), page())
    assert record.cdn_amp_web_url == (
        "https://www-clickorlando-com.cdn.ampproject.org/c/s/"
        "www.clickorlando.com/news/local/2020/02/03/volusia-facial-recognition/?outputType=amp"
    )


# --- type ----------------------------------------------------------------------------------

VIDEO_SOURCE = SourceSettings(name="tube", url=FEED_URL, type="video", category="video")


@pytest.mark.parametrize(
    ("og_type", "source", "expected"),
    [
        ("article", VIDEO_SOURCE, "article"),
        ("video", SOURCE, "video"),
        ("video.other", SOURCE, "video"),
        ("VIDEO.EPISODE", SOURCE, "video"),
        ("music.song", SOURCE, "audio"),
        ("website", VIDEO_SOURCE, "video"),
        ("profile", SOURCE, "article"),
        (None, VIDEO_SOURCE, "video"),
    ],
)
def test_type_precedence(og_type: str | None, source: SourceSettings, expected: str) -> None:
    assert build(entry(), page(type=og_type), source).type == expected


# --- provider ------------------------------------------------------------------------------

NAMED_SOURCE = SourceSettings(name="click", url=FEED_URL, provider="WKMG News 6")


@pytest.mark.parametrize(
    ("meta", "source", "expected"),
    [
        (page(), NAMED_SOURCE, "Click Orlando"),
        (page(site_name=None), NAMED_SOURCE, "WKMG News 6"),
        (page(site_name="  "), NAMED_SOURCE, "WKMG News 6"),
        (page(site_name=None), SOURCE, "Clickorlando"),
        (None, SOURCE, "Clickorlando"),
    ],
)
def test_provider_name_precedence(
    meta: PageMetadata | None, source: SourceSettings, expected: str
) -> None:
    assert build(entry(), meta, source).provider.name == expected


def test_provider_domain_comes_from_web_url() -> None:
    record = build(entry(), page(canonical_url="https://clickorlando.com/a"))
    assert record.provider.domain == "clickorlando.com"


# --- images --------------------------------------------------------------------------------

PAGE_IMAGE = Image("https://www.clickorlando.com/resizer/a.jpg", 1280, 720)
FEED_IMAGE = Image("https://cdn.example.com/b.jpg", None, None, "Deputies at work")


@pytest.mark.parametrize(
    ("page_images", "feed_images", "expected"),
    [
        pytest.param(
            (PAGE_IMAGE,),
            (FEED_IMAGE,),
            (replace(PAGE_IMAGE, title=FEED_TITLE), FEED_IMAGE),
            id="page first, then feed; missing title filled",
        ),
        pytest.param(
            (PAGE_IMAGE,),
            (Image(PAGE_IMAGE.url + "?utm_source=rss#x"),),
            (replace(PAGE_IMAGE, title=FEED_TITLE),),
            id="feed duplicate dropped; the page's sized copy kept",
        ),
        pytest.param(
            (PAGE_IMAGE, PAGE_IMAGE),
            (),
            (replace(PAGE_IMAGE, title=FEED_TITLE),),
            id="page duplicate dropped",
        ),
        pytest.param(
            (Image("/img/c.jpg", 600, 400),),
            (),
            (Image("https://www.clickorlando.com/img/c.jpg", 600, 400, FEED_TITLE),),
            id="relative page image made absolute",
        ),
        pytest.param((Image("data:image/png;base64,AAAA"),), (), (), id="non-http image dropped"),
    ],
)
def test_images_merge(
    page_images: tuple[Image, ...], feed_images: tuple[Image, ...], expected: tuple[Image, ...]
) -> None:
    record = build(entry(images=feed_images), page(images=page_images))
    assert record.images == expected


def test_images_are_capped() -> None:
    images = tuple(Image(f"https://cdn.example.com/{i}.jpg") for i in range(8))
    record = build(entry(images=images), page(images=images[:3]))
    assert [i.url for i in record.images] == [i.url for i in images[:MAX_IMAGES]]


# --- the rest ------------------------------------------------------------------------------


def test_defaults_and_provenance() -> None:
    record = build(entry(), page())
    assert (record.category, record.quality, record.heat, record.is_published) == (
        "news",
        0,
        -1,
        False,
    )
    assert (record.topics, record.related, record.secured) == ((), (), "")
    assert record.provenance.source_name == "click"
    assert record.provenance.feed_url == FEED_URL
    assert record.provenance.guid == "click-1"
    assert record.provenance.fetched_at == FETCHED
    assert record.text == "Full article text."


def test_page_only_record_uses_web_url_as_guid_and_summary_as_text_fallback() -> None:
    assert build(None, page()).provenance.guid == LINK
    assert build(entry(summary="<p>Short <i>text</i></p>"), None).text == "Short text"


@pytest.mark.parametrize(
    ("raw", "meta"),
    [
        pytest.param(None, None, id="nothing"),
        pytest.param(entry(link="not a url"), None, id="no usable URL"),
        pytest.param(entry(link="ftp://example.com/a"), None, id="non-http URL"),
        pytest.param(entry(title=""), None, id="no title"),
        pytest.param(entry(title=" "), page(title=None), id="blank titles"),
        pytest.param(None, page(url="", canonical_url=None), id="page without URL"),
    ],
)
def test_unusable_items_give_no_record(raw: RawEntry | None, meta: PageMetadata | None) -> None:
    record = build_record(raw, meta, SOURCE, feed_url=FEED_URL, fetched_at=FETCHED, now=NOW)
    assert record is None
