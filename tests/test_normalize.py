"""Canonical URLs, AMP cache URLs, provider domains and names, excerpts."""

from __future__ import annotations

import socket
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aggregator import normalize
from aggregator.normalize import (
    amp_cache_url,
    canonical_url,
    make_excerpt,
    provider_domain,
    provider_name_from_domain,
    same_site,
)


def load_front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    front = text.removeprefix("---\n").split("\n---", 1)[0]
    data = yaml.safe_load(front)
    assert isinstance(data, dict)
    return data


def seed_records(seed_file: Path) -> list[dict[str, Any]]:
    record = load_front_matter(seed_file)
    return [record, *record["related"]]


# --- canonical_url -------------------------------------------------------------------------

A = "https://example.com/story"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{A}?utm_source=rss", A),
        (f"{A}?UTM_Medium=email&Utm_Campaign=x", A),
        (f"{A}?fbclid=IwAR0abc", A),
        (f"{A}?gclid=1&dclid=2&gbraid=3&wbraid=4", A),
        (f"{A}?msclkid=1&yclid=2", A),
        (f"{A}?mc_cid=1&mc_eid=2", A),
        (f"{A}?_hsenc=p2&_hsmi=3", A),
        (f"{A}?igshid=abc", A),
        (f"{A}?mkt_tok=abc", A),
        (f"{A}?ref_src=twsrc%5Etfw", A),
        (f"{A}?oly_enc_id=1&oly_anon_id=2&vero_id=3", A),
        (f"{A}?__s=abc&s_cid=1", A),
        (f"{A}?cmpid=rss&ncid=txtlnkusaolp00000618&ocid=msedgntp", A),
        (f"{A}?sr_share=twitter&ito=792", A),
        (f"{A}?spm=a2c4g.11186623", A),
        (f"{A}?utm%5Fsource=encoded", A),
    ],
)
def test_canonical_url_drops_tracking_parameters(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{A}?id=42&utm_source=x", f"{A}?id=42"),
        (f"{A}/?outputType=amp", f"{A}/?outputType=amp"),
        (f"{A}?utm_source=x&p=2&id=7", f"{A}?p=2&id=7"),
        (f"{A}?b=2&a=1", f"{A}?b=2&a=1"),
        (f"{A}?q=a%20b&flag", f"{A}?q=a%20b&flag"),
        (f"{A}?crop=1.00xw:1.00xh;0,0&resize=1200:*", f"{A}?crop=1.00xw:1.00xh;0,0&resize=1200:*"),
        (f"{A}?ref=home", f"{A}?ref=home"),
        (f"{A}?a=1&&b=2", f"{A}?a=1&b=2"),
    ],
)
def test_canonical_url_keeps_legitimate_parameters_in_order(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://WWW.Example.COM/Path/Case", "https://www.example.com/Path/Case"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        (f"{A}#comments", A),
        (f"{A}/", f"{A}/"),
        ("https://example.com", "https://example.com"),
        (f"  {A}\n", A),
        ("https://Bücher.example/a", "https://bücher.example/a"),
        ("https://xn--bcher-kva.example/a", "https://xn--bcher-kva.example/a"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("https://[2001:DB8::1]:8443/a", "https://[2001:db8::1]:8443/a"),
    ],
)
def test_canonical_url_normalises_scheme_host_port_and_fragment(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "/relative/path",
        "example.com/no-scheme",
        "ftp://example.com/file",
        "mailto:desk@example.com",
        "javascript:alert(1)",
        "https:///no-host",
        "https://example.com:99999/bad-port",
        "https://exa mple.com/space-in-host",
    ],
)
def test_canonical_url_rejects_unusable_urls(url: str) -> None:
    assert canonical_url(url) == ""


# --- amp_cache_url -------------------------------------------------------------------------


def test_amp_cache_url_reproduces_every_seed_value(seed_file: Path) -> None:
    records = seed_records(seed_file)
    assert len(records) == 7
    for record in records:
        assert amp_cache_url(record["ampWebUrl"]) == record["cdnAmpWebUrl"]


@pytest.mark.parametrize(
    ("amp_url", "expected"),
    [
        ("", ""),
        ("not a url", ""),
        (
            "http://www.example.com/index.html",
            "https://www-example-com.cdn.ampproject.org/c/www.example.com/index.html",
        ),
        (
            "https://example.com/g?value=Hello%20World",
            "https://example-com.cdn.ampproject.org/c/s/example.com/g?value=Hello%20World",
        ),
        (
            "https://hello-world.com/a",
            "https://hello--world-com.cdn.ampproject.org/c/s/hello-world.com/a",
        ),
        (
            "https://hello--world.com/a",
            "https://hello----world-com.cdn.ampproject.org/c/s/hello--world.com/a",
        ),
        (
            "https://en-us.example.com/a",
            "https://0-en--us-example-com-0.cdn.ampproject.org/c/s/en-us.example.com/a",
        ),
        (
            "https://www.example.com/a#top",
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a",
        ),
    ],
)
def test_amp_cache_url_follows_the_cache_format(amp_url: str, expected: str) -> None:
    assert amp_cache_url(amp_url) == expected


@pytest.mark.parametrize(
    ("amp_url", "expected"),
    [
        # Punycode-decoded, dashes doubled, dots to dashes, then encoded again as one label.
        (
            "https://xn--bcher-kva.ch/amp",
            "https://xn--bcher-ch-65a.cdn.ampproject.org/c/s/xn--bcher-kva.ch/amp",
        ),
        (
            "https://bücher.ch/amp",
            "https://xn--bcher-ch-65a.cdn.ampproject.org/c/s/bücher.ch/amp",
        ),
        ("https://點看.com", "https://xn---com-k47jg78q.cdn.ampproject.org/c/s/點看.com"),
        (
            "https://xn--4gbrim.xn----rmckbbajlc6dj7bxne2c.xn--wgbh1c/",
            "https://xn-------i5fvcbaopc6fkc0de0d9jybegt6cd.cdn.ampproject.org"
            "/c/s/xn--4gbrim.xn----rmckbbajlc6dj7bxne2c.xn--wgbh1c/",
        ),
    ],
)
def test_amp_cache_url_encodes_idn_hosts(amp_url: str, expected: str) -> None:
    assert amp_cache_url(amp_url) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("toplevelnohyphens", "qsgpfjzulvuaxb66z77vlhb5gu2irvcnyp6t67cz6tqo5ae6fysa"),
        ("no-dot-domain", "4lxc7wqq7b25walg4rdiil62veijrmqui5z3ept2lyfqqwpowryq"),
        (
            "itwasadarkandstormynight.therainfellintorrents.exceptatoccasionalintervals"
            "whenitwascheckedby.aviolentgustofwindwhichsweptupthestreets.com",
            "dgz4cnrxufaulnwku4ow5biptyqnenjievjht56hd7wqinbdbteq",
        ),
        (
            "hello.xn--4gbrim.xn----rmckbbajlc6dj7bxne2c.xn--wgbh1c",
            "a6h5moukddengbsjm77rvbosevwuduec2blkjva4223o4bgafgla",
        ),
    ],
)
def test_amp_cache_subdomain_falls_back_to_a_hash(host: str, expected: str) -> None:
    assert normalize.amp_cache_subdomain(host) == expected


# --- provider_domain / names / same_site ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.clickorlando.com/news/", "clickorlando.com"),
        ("https://amp.theguardian.com/technology", "theguardian.com"),
        ("https://news.bbc.co.uk/1/hi", "bbc.co.uk"),
        ("https://edmontonjournal.com/news", "edmontonjournal.com"),
        ("https://a.b.c.example.com.au/x", "example.com.au"),
        ("http://127.0.0.2:8080/feed.xml", "127.0.0.2"),
        ("http://[::1]/x", "::1"),
        ("http://localhost:8000/x", "localhost"),
        ("https://nachrichten.bücher.de/a", "bücher.de"),
        ("https://www.xn--bcher-kva.de/a", "xn--bcher-kva.de"),
        ("https://новости.пример.рф/", "пример.рф"),
        ("https://WWW.Example.COM./x", "example.com"),
        ("https://intranet.corp/x", "intranet.corp"),
        ("", ""),
        ("mailto:a@example.com", ""),
    ],
)
def test_provider_domain_is_the_registrable_domain(url: str, expected: str) -> None:
    assert provider_domain(url) == expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("clickorlando.com", "Clickorlando"),
        ("theguardian.com", "Theguardian"),
        ("bbc.co.uk", "Bbc"),
        ("news.bbc.co.uk", "Bbc"),
        ("fox-news.com", "Fox News"),
        ("xn--bcher-kva.de", "Bücher"),
        ("127.0.0.2", "127.0.0.2"),
        ("localhost", "Localhost"),
        ("", ""),
    ],
)
def test_provider_name_from_domain(domain: str, expected: str) -> None:
    assert provider_name_from_domain(domain) == expected


@pytest.mark.parametrize(
    ("url_a", "url_b", "expected"),
    [
        ("https://www.theguardian.com/a", "https://amp.theguardian.com/a", True),
        ("https://www.bbc.co.uk/a", "https://news.bbc.co.uk/b", True),
        ("https://bbc.co.uk/a", "https://itv.co.uk/a", False),
        ("https://bücher.de/a", "https://www.xn--bcher-kva.de/b", True),
        ("http://127.0.0.2/a", "http://127.0.0.2:8080/b", True),
        ("http://127.0.0.2/a", "http://127.0.0.3/a", False),
        ("", "", False),
        ("https://example.com/a", "", False),
    ],
)
def test_same_site(url_a: str, url_b: str, expected: bool) -> None:
    assert same_site(url_a, url_b) is expected


def _urljoin_outcome(base: str, href: str, join: Any) -> str:
    try:
        return str(join(base, href))
    except ValueError as exc:
        return f"ValueError: {exc}"


_PLAIN = st.from_regex(normalize._PLAIN_ABSOLUTE, fullmatch=True)
_PIECE = st.text(alphabet="ab/.;?#[]:@%\\ \t\n\x7f\x00é-_~!$&'()*+,=1", max_size=10)
_ABSOLUTE_ISH = st.builds(
    "{}://{}{}".format, st.sampled_from(["http", "https", "HTTP", "ftp"]), _PIECE, _PIECE
)
_URLISH = st.one_of(_PLAIN, _ABSOLUTE_ISH, _PIECE)
_EDGES = [
    "http://a/b;",
    "http://a/b;?q",
    "http://a?#f",
    "http://a/b?",
    "http://a/b#",
    "HTTP://a/",
    "http:///x",
    "http://a/b\tc",
    "http://[::1]/",
    "http://[",
    "https://[x]/",
    "http://a/./b/../c",
    "//a/b",
    "",
]


@given(_PLAIN, _PLAIN)
def test_urljoin_fast_takes_a_plain_absolute_url_as_urljoin_does(base: str, href: str) -> None:
    assert normalize.urljoin_fast(base, href) == urljoin(base, href) == href


@pytest.mark.parametrize("edge", _EDGES)
@pytest.mark.parametrize("other", ["http://x.org/p/q", "https://x.org", "http://[", ""])
def test_urljoin_fast_is_urljoin_on_the_edges(edge: str, other: str) -> None:
    for base, href in ((other, edge), (edge, other)):
        assert _urljoin_outcome(base, href, normalize.urljoin_fast) == _urljoin_outcome(
            base, href, urljoin
        )


@given(_URLISH, _URLISH)
def test_urljoin_fast_is_urljoin(base: str, href: str) -> None:
    assert _urljoin_outcome(base, href, normalize.urljoin_fast) == _urljoin_outcome(
        base, href, urljoin
    )


def test_host_answers_are_remembered_for_hosts_dns_allows_only() -> None:
    """Hosts repeat for every link of a crawl, so their answers are kept; but a hostile
    feed's megabyte-long host names must not pile up in the cache."""
    domains, ascii_hosts = normalize._REGISTRABLE_DOMAINS.cache, normalize._ASCII_HOSTS.cache
    domains.cache_clear()
    ascii_hosts.cache_clear()
    for _ in range(3):
        assert same_site("https://www.bbc.co.uk/a", "https://news.bbc.co.uk/b")
    assert domains.cache_info().currsize == 2
    assert ascii_hosts.cache_info().hits >= 4
    long_host = "a" * 300 + ".example.com"
    assert normalize.registrable_domain(long_host) == "example.com"
    assert normalize._to_ascii(long_host.upper()) == long_host
    assert domains.cache_info().currsize == 2
    assert ascii_hosts.cache_info().currsize == 1


def test_suffix_list_is_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    normalize._extractor.cache_clear()
    assert provider_domain("https://sub.example.co.jp/x") == "example.co.jp"
    assert list(tmp_path.iterdir()) == []


# --- make_excerpt --------------------------------------------------------------------------

WORDS = "The sheriff said the program is worth it, according to analysts; "


def test_excerpt_of_short_text_is_unchanged() -> None:
    assert (
        make_excerpt("Statement comes after leaked memo.") == "Statement comes after leaked memo."
    )


def test_excerpt_of_exact_limit_text_is_unchanged() -> None:
    text = ("word " * 68)[:340]
    assert make_excerpt(text) == text


def test_excerpt_of_one_char_over_limit_is_cut() -> None:
    text = ("word " * 68)[:340] + "s"
    assert make_excerpt(text).endswith(" ...")


# Each seed excerpt with a plausible continuation: the nearest-word-end rule gives it back.
CONTINUATIONS = [" explained Monday.", " time crime center.", " photos online.", " the use."]


def test_excerpt_rule_reproduces_the_seed_cuts(seed_file: Path) -> None:
    cut = [r["excerpt"] for r in seed_records(seed_file) if r["excerpt"].endswith(" ...")]
    assert [len(e) - 4 for e in cut] == [337, 341, 341, 342]
    for excerpt, continuation in zip(cut, CONTINUATIONS, strict=True):
        assert make_excerpt(excerpt.removesuffix(" ...") + continuation) == excerpt


@pytest.mark.parametrize(
    ("text", "expected_head"),
    [
        ("a" * 336 + " bb cccccccccc", "a" * 336 + " bb"),
        ("a" * 338 + " bbbbbbbbbb cc", "a" * 338),
        ("a" * 339 + " bbb", "a" * 339),
        ("a" * 345 + " b", "a" * 345),
        ("a" * 300 + " " + "b" * 100, "a" * 300),
        ("a" * 338 + ", bbbbbbbbbbbb", "a" * 338),
        ("a" * 337 + " — bbbbbbbbbbbbbbb", "a" * 337),
    ],
)
def test_excerpt_cuts_at_the_word_end_nearest_the_limit(text: str, expected_head: str) -> None:
    assert make_excerpt(text) == expected_head + " ..."


@pytest.mark.parametrize(
    ("text", "expected_head"),
    [
        ("x" * 500, "x" * 340),
        ("a" * 100 + " " + "b" * 400, "a" * 100 + " " + "b" * 239),
        ("新闻" * 300, "新闻" * 170),
    ],
)
def test_excerpt_without_a_usable_space_is_cut_hard_at_the_limit(
    text: str, expected_head: str
) -> None:
    assert make_excerpt(text) == expected_head + " ..."


def test_excerpt_hard_cut_keeps_combining_marks_with_their_letter() -> None:
    text = "e\u0301" * 400
    head = make_excerpt(text).removesuffix(" ...")
    assert text.startswith(head)
    assert not unicodedata.combining(text[len(head)])


def test_excerpt_hard_cut_never_splits_a_surrogate_pair() -> None:
    text = "\ud83d\ude00" * 400
    head = make_excerpt(text).removesuffix(" ...")
    assert len(head) % 2 == 0


def test_excerpt_of_only_punctuation_is_empty() -> None:
    assert make_excerpt(", " * 300) == ""


def test_excerpt_custom_limit() -> None:
    assert make_excerpt("one two three four", limit=8) == "one two ..."


@given(st.text(alphabet=st.sampled_from("ab é,;\u0301\n"), max_size=800))
def test_excerpt_is_a_bounded_prefix(text: str) -> None:
    result = make_excerpt(text)
    if len(text) <= 340:
        assert result == text
    elif result:
        assert result.endswith(" ...")
        assert len(result) <= 350
        assert text.startswith(result.removesuffix(" ..."))


def _excerpt_scanning_everything(text: str, limit: int) -> str:
    """make_excerpt as it was written first: every word end of the whole text listed."""
    if len(text) <= limit:
        return text
    ends = [
        i
        for i in range(1, len(text))
        if text[i].isspace() and not text[i - 1].isspace() and limit // 2 <= i <= limit + 6
    ]
    if ends:
        cut = min(ends, key=lambda i: (abs(i - limit), i))
    else:
        cut = limit
        while cut > 1 and (normalize._joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
            cut -= 1
    head = text[:cut].rstrip().rstrip(normalize._TRAILING_PUNCTUATION)
    return f"{head} ..." if head else ""


@given(
    st.text(alphabet=st.sampled_from("ab é,;\u0301\n\t-"), max_size=400),
    st.integers(min_value=2, max_value=120),
)
def test_excerpt_reads_only_around_the_limit_yet_cuts_where_a_full_scan_does(
    text: str, limit: int
) -> None:
    assert make_excerpt(text, limit) == _excerpt_scanning_everything(text, limit)


def test_excerpt_of_a_huge_text_allocates_next_to_nothing() -> None:
    """A 12 MB one-line feed summary once built a list of its 2.4 million word ends
    (~85 MB) to pick the one nearest the limit."""
    text = "word " * 400_000
    tracemalloc.start()
    try:
        excerpt = make_excerpt(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert excerpt == _excerpt_scanning_everything(text[:2_000], 340)
    assert peak < 100_000, f"{peak} bytes allocated"


@pytest.mark.parametrize(
    ("base", "href", "expected"),
    [
        ("https://a.example/x/", "y", "https://a.example/x/y"),
        ("", "https://a.example/z", "https://a.example/z"),
        ("https://a.example/", "http://[", ""),
        ("http://[", "y", ""),
        ("https://a.example/", "https://[x]/", ""),
    ],
)
def test_join_url(base: str, href: str, expected: str) -> None:
    assert normalize.join_url(base, href) == expected


def test_canonical_url_encodes_what_no_url_carries_raw() -> None:
    url = "https://a.example/x\x00b c\u202e?q=1\x01&utm_source=z"
    assert normalize.canonical_url(url) == "https://a.example/x%00b%20c%E2%80%AE?q=1%01"
    assert normalize.escape_url_controls("https://a.example/i\ud800") == (
        "https://a.example/i%ED%A0%80"
    )
    plain = "https://a.example/ünï/path?q=é"
    assert normalize.canonical_url(plain) == plain == normalize.escape_url_controls(plain)


def test_a_url_past_8_kib_is_no_url() -> None:
    assert canonical_url("https://example.com/" + "a" * 8000) != ""
    assert canonical_url("https://example.com/" + "a" * 9000) == ""
