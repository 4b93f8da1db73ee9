"""The dedupe ladder: one record per article however it is reached (real SQLite files)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.dedupe import normalise_words, richer, text_fingerprint, title_key
from aggregator.models import Image, Provenance, Provider, Record
from aggregator.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = " ".join(f"word{i} sentence about the harbour bridge reopening" for i in range(40))


def make(
    url: str, title: str = "Harbour bridge reopens after two years of repairs", **kw: object
) -> Record:
    base = Record(
        title=title,
        web_url=url,
        provider=Provider("Example News", "example.com"),
        excerpt="The bridge reopened on Sunday.",
        published=T0,
        text=BODY,
        provenance=Provenance(source_name="feed", guid=url, feed_url="https://example.com/feed"),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'dedupe.db'}")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (  # the feed links the AMP page; the stored record knows it as ampWebUrl
            make("https://example.com/a", amp_web_url="https://example.com/a/amp"),
            make("https://example.com/a/amp", text="", excerpt="Short."),
        ),
        (  # the stored record was reached by its AMP URL; now the canonical comes with it
            make("https://example.com/b/amp"),
            make("https://example.com/b", amp_web_url="https://example.com/b/amp", text=""),
        ),
        (  # same words under another URL and another guid
            make("https://example.com/c?print=1"),
            make("https://mirror.example.org/c", provider=Provider("Mirror", "example.org")),
        ),
        (  # same provider, same title up to case and punctuation, within the window
            make("https://example.com/d", text=""),
            make(
                "https://example.com/d-updated",
                title="Harbour Bridge reopens — after two years of repairs!",
                text="",
                published=T0 + timedelta(hours=30),
            ),
        ),
    ],
    ids=["amp-as-link", "canonical-after-amp", "text-fingerprint", "near-identical-title"],
)
def test_second_arrival_of_an_article_is_the_same_record(
    store: Store, first: Record, second: Record
) -> None:
    assert store.upsert_records([first]).new == 1
    counts = store.upsert_records([second])
    assert counts.new == 0
    assert store.count_records() == 1


@pytest.mark.parametrize(
    "other",
    [
        make("https://example.com/e2", text="", published=T0 + timedelta(hours=100)),
        make("https://other.example.net/e", text="", provider=Provider("Other", "example.net")),
        make("https://example.com/e3", title="Morning briefing", text=""),
    ],
    ids=["outside-window", "other-provider", "short-title"],
)
def test_same_title_is_not_a_duplicate_without_the_other_conditions(
    store: Store, other: Record
) -> None:
    first = make("https://example.com/e", text="")
    if other.title == "Morning briefing":
        first = replace(first, title="Morning briefing")
    store.upsert_records([first])
    assert store.upsert_records([other]).new == 1
    assert store.count_records() == 2


def test_richer_fields_win_and_the_first_url_stays(store: Store) -> None:
    plain = make("https://example.com/f", text="", excerpt="Short.")
    rich = make(
        "https://example.com/f-2",
        text="",
        excerpt="A much longer and more useful excerpt about the harbour bridge reopening.",
        images=(Image("https://example.com/f.jpg", 1200, 675),),
        amp_web_url="https://example.com/f-2/amp",
    )
    store.upsert_records([plain])
    store.upsert_records([rich])
    stored = store.get_record("https://example.com/f")
    assert stored is not None
    assert stored.record.excerpt == rich.excerpt
    assert stored.record.images[0].width == 1200
    assert stored.record.amp_web_url == "https://example.com/f-2/amp"
    assert store.get_record("https://example.com/f-2") is None


def test_richer_keeps_the_earliest_date_and_sized_images() -> None:
    early = make("u", published=T0, images=(Image("https://x/1.jpg"),))
    late = make("u", published=T0 + timedelta(hours=1), images=(Image("https://x/2.jpg", 10, 10),))
    merged = richer(early, late)
    assert merged.published == T0
    assert merged.images[0].url == "https://x/2.jpg"


def test_keys_ignore_form_but_not_words() -> None:
    assert title_key("Fed raises rates — again") == title_key("FED Raises Rates: Again!")
    assert title_key("Fed raises rates") != title_key("Fed cuts rates")
    assert text_fingerprint("T", "", "too short") == ""
    assert text_fingerprint("T", "", BODY) == text_fingerprint("T", "", BODY.upper())


LEAD = " ".join(f"lead{i} words of the shared wire copy about the harbour" for i in range(12))


@pytest.mark.parametrize("text", ["", LEAD], ids=["lead-as-excerpt", "lead-as-text"])
def test_one_wire_lead_under_two_headlines_is_two_articles(store: Store, text: str) -> None:
    first = make(
        "https://example.com/w1", title="Bridge reopens to traffic", excerpt=LEAD, text=text
    )
    other = make(
        "https://other.example.net/w2",
        title="City cheers as harbour crossing returns",
        excerpt=LEAD,
        text=text,
        provider=Provider("Other", "example.net"),
    )
    store.upsert_records([first])
    assert store.upsert_records([other]).new == 1
    # the same headline and lead under another URL and guid is the same article again
    mirror = replace(
        other,
        web_url="https://mirror.example.org/w2",
        provenance=replace(other.provenance, guid="mirror-guid"),
    )
    assert store.upsert_records([mirror]).new == 0


_NON_WORD = re.compile(r"[\W_]+")


def plain_normalise_words(text: str) -> str:
    """The plain form `normalise_words` replaced: one substitution over the whole text."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


_AWKWARD = st.text(
    alphabet=st.sampled_from(
        list("aZ9_ -.,'’“”—\t\n\r\x0b\x0c\x1c\x1f\x85\u00a0\u1680\u2028\u3000")
        + list("ßﬁ½²Ⅻ٣İſ\u0301é\u00b4㎏ⅰ\ufeff\u200b")
    )
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_AWKWARD, st.text(max_size=80)))
def test_normalise_words_equals_one_substitution(text: str) -> None:
    assert normalise_words(text) == plain_normalise_words(text)


def test_normalise_words_drops_punctuation_case_and_underscores() -> None:
    assert normalise_words("  Fed Raises_Rates — AGAIN!\n(2024) ﬁnal  ") == (
        "fed raises rates again 2024 final"
    )


def test_the_identity_query_reads_the_rows_of_the_plain_or_of_in_terms(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, or_, select

    from aggregator.store.identity import _RECORDS, IdentityIndex

    path = tmp_path / "identity.db"
    x4 = Provenance(source_name="other", guid="x-4", feed_url="https://e/f")
    g5 = Provenance(source_name="feed", guid="https://example.com/g5", feed_url="https://e/f")
    untexted = [  # (web_url, title, provenance or None for make's own)
        ("https://example.com/g2", "Tram line two closes for a month of works", None),
        ("https://example.com/g3", "Ferry timetable changes for the winter", None),
        ("https://example.com/g4", "Council approves the new cycle lanes downtown", x4),
        ("https://example.com/g5", "Library extends its opening hours", None),
    ]
    stored = [make("https://example.com/g1")] + [
        make(url, title=title, text="", **({"provenance": p} if p else {}))
        for url, title, p in untexted
    ]
    stored[1] = replace(stored[1], amp_web_url="https://example.com/g2/amp")
    Store(f"sqlite:///{path}").upsert_records(stored)
    batch = [
        make("https://mirror.example.org/g1", provider=Provider("Mirror", "example.org")),
        make("https://example.com/g2/amp", text="", excerpt="Short."),  # the AMP URL of g2
        make("https://example.com/g3b", title="Ferry Timetable Changes for the Winter!", text=""),
        make("https://example.com/g4b", title="Unrelated", text="", provenance=x4),  # g4's guid
        make("https://example.com/new", title="Something else entirely happened", text=""),
        make("https://example.com/g5-moved", title="Library hours", text="", provenance=g5),
    ]
    columns = _RECORDS.c
    urls = sorted({r.web_url for r in batch} | {r.amp_web_url for r in batch if r.amp_web_url})
    texts = sorted({text_fingerprint(r.title, r.excerpt, r.text) for r in batch} - {""})
    titles = sorted({title_key(r.title) for r in batch} - {""})
    plain = select(_RECORDS).where(
        or_(
            (columns.source_name == "feed")
            & columns.guid.in_(
                sorted(r.provenance.guid for r in batch if r.provenance.guid != "x-4")
            ),
            (columns.source_name == "other") & columns.guid.in_(["x-4"]),
            columns.web_url.in_(urls),
            columns.amp_web_url.in_(urls),
            columns.text_hash.in_(texts),
            columns.title_key.in_(titles),
        )
    )
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        expected = [dict(row._mapping) for row in connection.execute(plain)]
        index = IdentityIndex.load(connection, batch)
    engine.dispose()
    assert len(expected) == 5  # g1 by text, g2 by AMP URL, g3 by title, g4 and g5 by guid
    assert list(index.rows.values()) == expected
    assert [index.match_rule(record)[1] for record in batch] == [4, 3, 5, 1, 0, 1]


def test_the_edge_punctuation_stripped_before_the_word_check_holds_no_word_character() -> None:
    from aggregator.prefilter import EDGE_PUNCTUATION

    assert not any(char.isalnum() for char in EDGE_PUNCTUATION)
    assert normalise_words("(Fed), “rates”; «again»… [U.S.]") == "fed rates again u s"
