"""Canonical URLs, AMP cache URLs, provider domains and names, and clean excerpts.

Pure functions, no I/O. The public suffix list is the snapshot bundled with tldextract:
no network call is made and no cache is written.

AMP cache URLs follow the Google AMP Cache format (amp.dev, "AMP Cache URL format", and the
reference implementation ``@ampproject/toolbox-cache-url``)::

    https://<subdomain>.cdn.ampproject.org/c/[s/]<host><path>[?query]

where ``<subdomain>`` is the host punycode-decoded to Unicode, each ``-`` doubled, each ``.``
turned into ``-``, wrapped as ``0-…-0`` when characters 3–4 are ``--``, then punycode-encoded.
Hosts without a dot, longer than 63 characters or mixing left-to-right and right-to-left
letters fall back to the lower-case base32 SHA-256 of the host. The path part keeps the host
as written in the AMP URL (``https://點看.com`` → ``…/c/s/點看.com``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any
from urllib.parse import SplitResult, quote, unquote_plus, urljoin, urlsplit, urlunsplit

AMP_CACHE_DOMAIN = "cdn.ampproject.org"
DEFAULT_EXCERPT_LIMIT = 340
ELLIPSIS = " ..."

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PREFIXES = ("utm_",)
# Click ids and campaign/share markers from ad networks, mailers, analytics and social apps.
_TRACKING_PARAMS = frozenset(
    """
    fbclid gclid gclsrc dclid gbraid wbraid msclkid yclid twclid ttclid li_fat_id
    mc_cid mc_eid _hsenc _hsmi __hssc __hstc __hsfp hsctatracking mkt_tok
    igshid ref_src ref_url oly_enc_id oly_anon_id vero_id vero_conv __s s_cid s_kwcid
    cmpid ncid ocid sr_share ito spm _ga _gl ef_id rb_clickid wickedid epik
    xtor at_medium at_campaign pk_campaign pk_kwd pk_source pk_medium
    mtm_campaign mtm_source mtm_medium mtm_keyword soc_src soc_trk smid
    guccounter guce_referrer guce_referrer_sig _openstat hootpostid __twitter_impression
    usqp amp_js_v amp_gsa
    """.split()
)
_BAD_HOST_CHARS = frozenset(' <>"{}|\\^`')
_TRAILING_PUNCTUATION = ",;:-–—([{/“‘ "
_MAX_LABEL = 63
_EXCERPT_OVERSHOOT = 6


# A crawl asks about the same few hundred hosts for every link and image: the suffix
# lookup and the IDNA codec cost 10-30 us a call. Names longer than DNS allows are not kept.
_MAX_CACHED_HOST = 253
_HOST_CACHE_SIZE = 4096


@cache
def _extractor() -> Any:
    """The offline tldextract instance: bundled suffix list, no fetch, no disk cache.

    Imported here, not at the top: tldextract pulls in requests and filelock (about 90 ms),
    which a re-poll that builds no record never needs."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def is_tracking_param(name: str) -> bool:
    """True when a query parameter name is a known tracking parameter (case-insensitive)."""
    lowered = unquote_plus(name).strip().lower()
    return lowered.startswith(_TRACKING_PREFIXES) or lowered in _TRACKING_PARAMS


MAX_URL_LENGTH = 8192
"""Longer is no usable URL: nginx and most servers refuse a request line past 8 KiB."""


def _split_http(url: str) -> SplitResult | None:
    """Split an absolute http(s) URL with a sane host and length, or None."""
    if len(url) > MAX_URL_LENGTH:
        return None
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in _DEFAULT_PORTS or not host:
        return None
    if any(char in _BAD_HOST_CHARS or char.isspace() for char in host):
        return None
    return parts


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS[parts.scheme.lower()]:
        return host
    return f"{host}:{port}"


def _clean_query(query: str) -> str:
    """Drop tracking parameters; kept parameters keep their order and their encoding."""
    kept = [pair for pair in query.split("&") if pair and not is_tracking_param(pair.split("=")[0])]
    return "&".join(kept)


# What no URL should carry raw: C0 and C1 controls, space, DEL, bidi controls, the BOM,
# noncharacters and lone surrogates (a JSON Feed's strings can hold any of them). A NUL in
# a stored URL fails PostgreSQL's insert of the whole batch; a bidi override spoofs it.
_URL_UNSAFE = re.compile(
    "[\x00-\x20\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff\ud800-\udfff]"
)


def escape_url_controls(url: str) -> str:
    """`url` with each character no URL should carry raw percent-encoded (as UTF-8), as
    browsers encode the controls in a path."""
    if _URL_UNSAFE.search(url) is None:
        return url
    return _URL_UNSAFE.sub(lambda m: quote(m.group(), safe="", errors="surrogatepass"), url)


def join_url(base: str, href: str) -> str:
    """`href` resolved against `base` (as is without one); "" when either cannot be parsed
    as a URL: urllib raises ValueError on a bad bracketed host ("http://[", "https://[x]/"),
    and one such link in a feed must not fail the feed."""
    try:
        return urljoin_fast(base, href) if base else href
    except ValueError:
        return ""


# An absolute http(s) URL that `urljoin` gives back unchanged: a lower-case scheme, a
# non-empty host, printable ASCII only (urllib drops tabs and newlines, and checks
# non-ASCII hosts), no ";" (an empty ";" parameter is dropped), no "[" or "]" (a bad
# bracketed host raises), and no empty "?" or "#" (both are dropped).
_PLAIN_ABSOLUTE = re.compile(
    r"https?://[\x21\x22\x24-\x2e\x30-\x3a\x3c-\x3e\x40-\x5a\x5c\x5e-\x7e]"  # host: not "/"
    r"[\x21\x22\x24-\x3a\x3c-\x3e\x40-\x5a\x5c\x5e-\x7e]*"  # host, path: not "#;?[]"
    r"(?:\?[\x21\x22\x24-\x7e]+)?"  # a query: not "#"
    r"(?:#[\x21-\x7e]+)?"
)


def urljoin_fast(base: str, href: str) -> str:
    """`urllib.parse.urljoin(base, href)`, without parsing either when both are plain
    absolute http(s) URLs (most links in feeds and pages): `href` itself, as urljoin
    would return it. Raises ValueError where urljoin does."""
    if _PLAIN_ABSOLUTE.fullmatch(href) and _PLAIN_ABSOLUTE.fullmatch(base):
        return href
    return urljoin(base, href)


@lru_cache(maxsize=256)
def canonical_url(url: str) -> str:
    """The canonical form of an http(s) URL, or "" when it is empty, invalid or not http(s).

    Scheme and host are lower-cased (an IDN host stays in Unicode), user info, default ports,
    the fragment and tracking parameters are dropped; the path and the order and encoding
    of the remaining query parameters are kept as given, but for the characters
    `escape_url_controls` encodes.

    Building one record asks for the same few URLs several times (the feed's link, the
    page's URL and its canonical link are often one URL; images recur): the last 256
    answers are kept (7 us a call otherwise; at most 2 MB of keys)."""
    parts = _split_http(url)
    if parts is None:
        return ""
    scheme = parts.scheme.lower()
    path, query = escape_url_controls(parts.path), escape_url_controls(_clean_query(parts.query))
    return urlunsplit((scheme, _netloc(parts), path, query, ""))


def _punycode_decode(host: str) -> str | None:
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            try:
                label = label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                return None
        labels.append(label)
    return ".".join(labels)


def _mixes_directions(text: str) -> bool:
    kinds = {unicodedata.bidirectional(char) for char in text}
    return "L" in kinds and bool(kinds & {"R", "AL"})


def _hashed_subdomain(host: str) -> str:
    digest = hashlib.sha256(host.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii").lower().rstrip("=")


def amp_cache_subdomain(host: str) -> str:
    """The Google AMP Cache subdomain label for `host` (see the module docstring)."""
    host = host.lower()
    ascii_host = _to_ascii(host)
    unicode_host = _punycode_decode(ascii_host)
    if unicode_host is None or "." not in host or len(ascii_host) > _MAX_LABEL:
        return _hashed_subdomain(ascii_host)
    if _mixes_directions(unicode_host):
        return _hashed_subdomain(ascii_host)
    label = unicode_host.replace("-", "--").replace(".", "-")
    if label[2:4] == "--":
        label = f"0-{label}-0"
    if not label.isascii():
        label = "xn--" + label.encode("punycode").decode("ascii")
    return label if len(label) <= _MAX_LABEL else _hashed_subdomain(ascii_host)


def amp_cache_url(amp_url: str) -> str:
    """The Google AMP Cache URL of an AMP document URL; "" for "" or a non-http(s) URL.

    Documents only (``/c/``); ``s/`` is added for https URLs; the query is kept, the fragment,
    user info and port are not (as in the reference implementation).
    """
    parts = _split_http(amp_url)
    if parts is None or parts.hostname is None:
        return ""
    host = parts.hostname
    secure = "s/" if parts.scheme.lower() == "https" else ""
    query = f"?{parts.query}" if parts.query else ""
    subdomain = amp_cache_subdomain(host)
    return f"https://{subdomain}.{AMP_CACHE_DOMAIN}/c/{secure}{host}{parts.path}{query}"


class _PerHost:
    """`compute(host)`, its answers kept for the last `_HOST_CACHE_SIZE` hosts asked about
    (none longer than DNS allows, so hostile names do not pile up)."""

    def __init__(self, compute: Callable[[str], str]) -> None:
        self._compute = compute
        self.cache = lru_cache(maxsize=_HOST_CACHE_SIZE)(compute)

    def __call__(self, host: str) -> str:
        return self.cache(host) if len(host) <= _MAX_CACHED_HOST else self._compute(host)


def _to_ascii(host: str) -> str:
    """The punycode (IDNA) form of a host, or the host itself when it cannot be encoded."""
    return _ASCII_HOSTS(host)


def _encode_idna(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host.lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def registrable_domain(host: str) -> str:
    """The eTLD+1 of a host; the host itself for IPs, localhost and unknown suffixes."""
    return _REGISTRABLE_DOMAINS(host)


def _registrable_domain(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host or _is_ip(host):
        return host
    parts = _extractor()(host)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}"
    return host


_ASCII_HOSTS = _PerHost(_encode_idna)
_REGISTRABLE_DOMAINS = _PerHost(_registrable_domain)


def provider_domain(url: str) -> str:
    """The registrable domain (eTLD+1) of a URL's host, "" when the URL has no http(s) host."""
    parts = _split_http(url)
    if parts is None or parts.hostname is None:
        return ""
    return registrable_domain(parts.hostname)


def provider_name_from_domain(domain: str) -> str:
    """A readable outlet name made from a domain: its registrable label, capitalised.

    ``clickorlando.com`` → ``Clickorlando``, ``news.bbc.co.uk`` → ``Bbc``,
    ``fox-news.com`` → ``Fox News``, ``xn--bcher-kva.de`` → ``Bücher``; IPs are returned as is.
    """
    domain = domain.strip().rstrip(".").lower()
    if not domain or _is_ip(domain):
        return domain
    label = _extractor()(domain).domain or domain.split(".")[0]
    label = _punycode_decode(label) or label
    return " ".join(word[:1].upper() + word[1:] for word in label.split("-") if word)


def same_site(url_a: str, url_b: str) -> bool:
    """True when both URLs have the same registrable domain (IDN and punycode compare equal)."""
    domain_a, domain_b = provider_domain(url_a), provider_domain(url_b)
    return bool(domain_a) and _to_ascii(domain_a) == _to_ascii(domain_b)


def _word_ends(text: str) -> list[int]:
    """Indices where a word ends and whitespace starts."""
    return [i for i in range(1, len(text)) if text[i].isspace() and not text[i - 1].isspace()]


def _choose_cut(text: str, limit: int) -> int:
    """The word end nearest `limit` (earlier on ties, at most `limit` + 6, at least half of it).

    Falls back to a hard cut at `limit` that does not split a combining sequence or a
    surrogate pair when no word end is in range.
    """
    # only the word ends the cut may land on: a 12 MB summary gave a 2.4M-int list
    window = text[: limit + _EXCERPT_OVERSHOOT + 1]
    ends = [i for i in _word_ends(window) if limit // 2 <= i]
    if ends:
        return min(ends, key=lambda i: (abs(i - limit), i))
    cut = limit
    while cut > 1 and (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    return cut


def _joins_previous(char: str) -> bool:
    """True for marks, joiners, variation selectors, skin tones and low surrogates."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or "\udc00" <= char <= "\udfff"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or char in "\u200d\ufe0e\ufe0f"
    )


def make_excerpt(text: str, limit: int = DEFAULT_EXCERPT_LIMIT) -> str:
    """Shorten clean plain text to about `limit` characters, ending in " ..." when cut.

    A text of at most `limit` characters is returned unchanged. A longer one is cut at the
    word end nearest to `limit` (never more than 6 past it, so the result is at most
    `limit` + 10 characters), trailing ",;:" and dashes are removed, and " ..." is appended
    (a text of only spaces and punctuation gives "").
    The seed's excerpts (337–342 characters before " ...") follow this rule for limit 340.
    """
    if len(text) <= limit:
        return text
    head = text[: _choose_cut(text, limit)].rstrip().rstrip(_TRAILING_PUNCTUATION)
    return f"{head}{ELLIPSIS}" if head else ""
