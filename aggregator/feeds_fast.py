"""Fast path for feed documents: lxml plus a narrow replica of what feedparser would store.

`parse` reads a well-formed RSS 0.9x/1.0/2.0 or Atom 1.0 document and returns the same
dicts feedparser's strict (expat) parser builds, restricted to the keys `aggregator.feeds`
reads (title, links, ids, dates, authors, tags, media, content), or None ("don't know").
The caller then runs feedparser, which stays the reference.

The replica follows feedparser 6.0's handlers step by step, quirks included: element names
are matched by namespace URI and lower-cased, text is stripped and passed through its
latin-1 → UTF-8 repair and cp1252 mapping, the first stored title/summary/id at the
shallowest depth wins, `<media:description>` after a summary becomes a content block, a
permalink guid doubles as the link, and so on. Anything outside that replica returns None:
a DOCTYPE, xml:base below the root element, markup inside a text element, xhtml or
base64 content, an element feedparser handles that is not replicated (source, image in an
entry, itunes:keywords, georss…), a date format whose parsing was not checked to agree.

lxml runs with a safe parser: no DTD loading, no entity resolution, no network, no huge
trees; `aggregator.feeds` has already removed unsafe entity declarations before this runs.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from lxml import etree

from aggregator.normalize import urljoin_fast

Dict = dict[str, Any]

# feedparser's namespace table (mixin._FeedParserMixin.namespaces), keys lower-cased.
_NAMESPACES = {
    uri.lower(): prefix
    for uri, prefix in {
        "": "",
        "http://backend.userland.com/rss": "",
        "http://blogs.law.harvard.edu/tech/rss": "",
        "http://purl.org/rss/1.0/": "",
        "http://my.netscape.com/rdf/simple/0.9/": "",
        "http://example.com/newformat#": "",
        "http://example.com/necho": "",
        "http://purl.org/echo/": "",
        "uri/of/echo/namespace#": "",
        "http://purl.org/pie/": "",
        "http://purl.org/atom/ns#": "",
        "http://www.w3.org/2005/Atom": "",
        "http://purl.org/rss/1.0/modules/rss091#": "",
        "http://webns.net/mvcb/": "admin",
        "http://purl.org/rss/1.0/modules/aggregation/": "ag",
        "http://purl.org/rss/1.0/modules/annotate/": "annotate",
        "http://media.tangent.org/rss/1.0/": "audio",
        "http://backend.userland.com/blogChannelModule": "blogChannel",
        "http://creativecommons.org/ns#license": "cc",
        "http://web.resource.org/cc/": "cc",
        "http://cyber.law.harvard.edu/rss/creativeCommonsRssModule.html": "creativeCommons",
        "http://backend.userland.com/creativeCommonsRssModule": "creativeCommons",
        "http://purl.org/rss/1.0/modules/company": "co",
        "http://purl.org/rss/1.0/modules/content/": "content",
        "http://my.theinfo.org/changed/1.0/rss/": "cp",
        "http://purl.org/dc/elements/1.1/": "dc",
        "http://purl.org/dc/terms/": "dcterms",
        "http://purl.org/rss/1.0/modules/email/": "email",
        "http://purl.org/rss/1.0/modules/event/": "ev",
        "http://rssnamespace.org/feedburner/ext/1.0": "feedburner",
        "http://freshmeat.net/rss/fm/": "fm",
        "http://xmlns.com/foaf/0.1/": "foaf",
        "http://www.w3.org/2003/01/geo/wgs84_pos#": "geo",
        "http://www.georss.org/georss": "georss",
        "http://www.opengis.net/gml": "gml",
        "http://postneo.com/icbm/": "icbm",
        "http://purl.org/rss/1.0/modules/image/": "image",
        "http://www.itunes.com/DTDs/PodCast-1.0.dtd": "itunes",
        "http://example.com/DTDs/PodCast-1.0.dtd": "itunes",
        "http://purl.org/rss/1.0/modules/link/": "l",
        "http://search.yahoo.com/mrss": "media",
        "http://search.yahoo.com/mrss/": "media",
        "http://madskills.com/public/xml/rss/module/pingback/": "pingback",
        "http://prismstandard.org/namespaces/1.2/basic/": "prism",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
        "http://www.w3.org/2000/01/rdf-schema#": "rdfs",
        "http://purl.org/rss/1.0/modules/reference/": "ref",
        "http://purl.org/rss/1.0/modules/richequiv/": "reqv",
        "http://purl.org/rss/1.0/modules/search/": "search",
        "http://purl.org/rss/1.0/modules/slash/": "slash",
        "http://schemas.xmlsoap.org/soap/envelope/": "soap",
        "http://purl.org/rss/1.0/modules/servicestatus/": "ss",
        "http://hacks.benhammersley.com/rss/streaming/": "str",
        "http://purl.org/rss/1.0/modules/subscription/": "sub",
        "http://purl.org/rss/1.0/modules/syndication/": "sy",
        "http://schemas.pocketsoap.com/rss/myDescModule/": "szf",
        "http://purl.org/rss/1.0/modules/taxonomy/": "taxo",
        "http://purl.org/rss/1.0/modules/threading/": "thr",
        "http://purl.org/rss/1.0/modules/textinput/": "ti",
        "http://madskills.com/public/xml/rss/module/trackback/": "trackback",
        "http://wellformedweb.org/commentAPI/": "wfw",
        "http://purl.org/rss/1.0/modules/wiki/": "wiki",
        "http://www.w3.org/1999/xhtml": "xhtml",
        "http://www.w3.org/1999/xlink": "xlink",
        "http://www.w3.org/XML/1998/namespace": "xml",
        "http://podlove.org/simple-chapters": "psc",
    }.items()
}
_CANONICAL_PREFIXES = frozenset(p.lower() for p in _NAMESPACES.values() if p)
_USERLAND = "http://backend.userland.com/rss"
_RSS10, _RSS090, _ATOM10 = (
    "http://purl.org/rss/1.0/",
    "http://my.netscape.com/rdf/simple/0.9/",
    "http://www.w3.org/2005/atom",
)
_FAST_VERSIONS = frozenset(
    ("rss20", "rss091u", "rss092", "rss093", "rss094", "rss", "rss10", "rss090", "atom10")
)
# Every feedparser 6.0 handler (`_start_X` / `_end_X`); tests check this against feedparser.
HANDLERS = frozenset(
    "abstract author body category cc_license channel cloud content content_encoded "
    "contributor copyright created creativeCommons_license creativecommons_license dc_author "
    "dc_contributor dc_creator dc_date dc_description dc_language dc_publisher dc_rights "
    "dc_subject dc_title dcterms_created dcterms_issued dcterms_modified dcterms_valid "
    "description email enclosure entry expirationdate feed feedburner_browserfriendly fullitem "
    "generator geom georss_box georss_line georss_point georss_polygon georss_where georssgeom "
    "gml_exterior gml_linearring gml_linestring gml_point gml_polygon gml_pos gml_poslist guid "
    "height homepage id image info issued item itunes_author itunes_block itunes_category "
    "itunes_email itunes_explicit itunes_image itunes_keywords itunes_link itunes_name "
    "itunes_owner itunes_subtitle itunes_summary keywords language lastbuilddate link "
    "managingeditor media_category media_content media_credit media_description media_group "
    "media_keywords media_license media_player media_rating media_restriction media_thumbnail "
    "media_title modified name newlocation psc_chapter psc_chapters pubdate published rights "
    "rss source subtitle summary tagline tags textInput textinput title updated uri url "
    "webmaster where width xhtml_body".split()
)
# FeedParserDict.keymap: a generic element named like these lands on another key.
_KEYMAP = {
    "channel": "feed",
    "items": "entries",
    "guid": "id",
    "date": "updated",
    "date_parsed": "updated_parsed",
    "description": "summary",
    "description_detail": "summary_detail",
    "url": "href",
    "modified": "updated",
    "modified_parsed": "updated_parsed",
    "issued": "published",
    "issued_parsed": "published_parsed",
    "copyright": "rights",
    "copyright_detail": "rights_detail",
    "tagline": "subtitle",
    "tagline_detail": "subtitle_detail",
}
# Keys that aggregator.feeds reads, or that steer feedparser's handlers.
_READ_KEYS = frozenset(
    "title title_detail summary summary_detail content links link id guidislink published "
    "published_parsed updated updated_parsed authors author author_detail tags media_content "
    "media_thumbnail ttl sy_updateperiod sy_updatefrequency image textinput href".split()
)
_RISKY_LOCAL_NAMES = frozenset(
    {name.lower() for name in HANDLERS}
    | {name.lower().split("_", 1)[1] for name in HANDLERS if "_" in name}
    | set(_READ_KEYS)
    | {key.split("_", 1)[1] for key in _READ_KEYS if "_" in key}
    | set(_KEYMAP)
    | {key.split("_", 1)[1] for key in _KEYMAP if "_" in key}
)
_TITLE = frozenset(("title", "dc:title"))
_DESCRIPTION = frozenset(("description", "dc:description", "media:description"))
_SUMMARY = frozenset(("summary", "itunes:summary"))
_GUID = frozenset(("guid", "id"))
_PUBLISHED = frozenset(("pubdate", "published", "issued", "dcterms:issued"))
_UPDATED = frozenset(("updated", "modified", "lastbuilddate", "dc:date", "dcterms:modified"))
_AUTHOR = frozenset(("author", "dc:creator", "dc:author", "itunes:author", "managingeditor"))
_AUTHOR_PARTS = {
    "name": "name",
    "itunes:name": "name",
    "email": "email",
    "itunes:email": "email",
    "uri": "href",
    "url": "href",
    "homepage": "href",
}
_CATEGORY = frozenset(("category", "dc:subject", "keywords", "media:category"))
_HINTS = frozenset(("ttl", "sy:updateperiod", "sy:updatefrequency"))
# Handled elements whose values aggregator.feeds never reads (leaves only).
_INERT_HANDLED = frozenset(
    "language dc:language rights copyright dc:rights subtitle tagline itunes:subtitle info "
    "feedburner:browserfriendly generator created dcterms:created expirationdate cloud "
    "newlocation webmaster dc:publisher media:credit media:rating media:restriction "
    "media:license media:player itunes:image itunes:link itunes:block itunes:explicit width "
    "height dcterms:valid".split()
)
_FEED_INERT_HANDLED = _INERT_HANDLED | _DESCRIPTION | _PUBLISHED | _UPDATED | _CATEGORY
_IMAGE_CHILDREN = frozenset(("title", "link", "description", "url", "href", "width", "height"))
_TEXTINPUT_CHILDREN = frozenset(("title", "link", "description", "name"))
_HTML_TYPES = frozenset(("application/xhtml+xml", "text/html"))
_TEXT_TYPES = frozenset(("text/plain", "text/html"))
_MRSS_CATEGORY_SCHEME = "http://search.yahoo.com/mrss/category_schema"
_ACCEPTABLE_URI_SCHEMES = frozenset(
    "file ftp gopher h323 hdl http https imap magnet mailto mms news nntp prospero rsync rtsp "
    "rtspu sftp shttp sip sips snews svn svn+ssh telnet wais aim callto cvs facetime feed git "
    "gtalk irc ircs irc6 itms msnim skype ssh smb ymsg".split()
)
_URI_FIXER = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_XML_DECLARATION = re.compile(r"^<\?xml[^>]*?>")
_FIRST_ELEMENT = re.compile(r"<\w")
_DTD = re.compile(r"<!DOCTYPE|<!ENTITY", re.I)
_XMLNS = re.compile(r"\sxmlns(?::([^\s=/>]+))?\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_LINK_REF = re.compile("&([A-Za-z0-9_]+);")
# Tags kept per entry (and per feed), here and in feedparser (`aggregator.feeds` caps its
# `_add_tag` too): each new tag is compared with every kept one, so 100,000 categories
# took minutes, and every one would be stored with the record.
MAX_TAGS = 100
# feedparser's email regex, but a match may only start where no local-part character
# precedes it: feedparser's own rescans a run of them from each of its positions (a 40,000
# character author took 5.6 s). A later start in the same run reaches the same "@" and the
# same domain, so it matches only if the run's first position does: results are the same.
_EMAIL = re.compile(
    r"""(?<![a-zA-Z0-9\_\-\.\+])(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# Dates whose parsing by feedparser and by aggregator.dates.parse_datetime was checked to agree.
_SAFE_DATE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)"
    r"|(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d\d? (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
    r"|Nov|Dec) \d{4} \d\d:\d\d:\d\d (?:GMT|UT|UTC|[+-]\d{4})"
)
_CP1252 = {
    i: bytes([i]).decode("cp1252") for i in range(128, 160) if i not in (129, 141, 143, 144, 157)
}
_C1_CONTROLS = re.compile("[\x80-\x9f]")
_NEW_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>"


class Unsupported(Exception):  # noqa: N818 - a verdict, not an error
    """The document has something the replica does not reproduce: use feedparser."""


@dataclass(frozen=True, slots=True)
class FastFeed:
    """What feedparser would have returned, as far as `aggregator.feeds` reads it."""

    version: str
    feed: Dict
    entries: list[Dict]


_local = threading.local()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
            dtd_validation=False,
            remove_comments=True,
            remove_pis=True,
            strip_cdata=True,
            recover=False,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse(text: str, url: str) -> FastFeed | None:
    """Parse `text` (decoded, defused) as feedparser would; None when not sure to match."""
    data = _prepare(text)
    if data is None or not url:
        return None
    try:
        root = etree.fromstring(data, _parser())
    except (etree.LxmlError, ValueError):  # not well-formed, too deep, too large
        return None
    try:
        return _Replica(url, text).run(root)
    except Unsupported:
        return None


def _prepare(text: str) -> bytes | None:
    """The bytes feedparser hands to expat: its own XML declaration, and no DOCTYPE."""
    declaration = _XML_DECLARATION.match(text)
    if declaration:
        text = _NEW_DECLARATION + text[declaration.end() :]
    else:
        text = _NEW_DECLARATION + "\n" + text
    first = _FIRST_ELEMENT.search(text)
    if first is None or _DTD.search(text, 0, first.start()):
        return None
    return text.encode("utf-8")


def _key(tag: str) -> str | None:
    """feedparser's name for an element ("title", "media:content"), None for unknown URIs."""
    namespace, _, local = tag[1:].rpartition("}") if tag[0] == "{" else ("", "", tag)
    lowered = namespace.lower()
    if _USERLAND in lowered:
        lowered = _USERLAND
    prefix = _NAMESPACES.get(lowered)
    if prefix is None:
        return None
    return f"{prefix.lower()}:{local.lower()}" if prefix else local.lower()


def _attrs(element: Any) -> Dict:
    """The attribute dict feedparser's strict parser builds (keys lower-cased)."""
    items = element.attrib.items()
    if not items:
        return {}
    attrs: Dict = {}
    for name, value in items:
        if name[0] == "{":
            namespace, _, local = name[1:].partition("}")
            prefix = _NAMESPACES.get(namespace.lower(), "")
            attrs[(f"{prefix}:{local}" if prefix else local).lower()] = value
        else:
            attrs[name.lower()] = value
    for name, value in items:  # expat's qnames: the local name of every attribute
        attrs[name.rpartition("}")[2].lower()] = value
    for name in ("rel", "type"):
        if name in attrs:
            attrs[name] = attrs[name].lower()
    return attrs


def _fp_text(value: str) -> str:
    """feedparser's repair of text values: UTF-8 read as latin-1, then cp1252 code points."""
    if value.isascii():
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(_CP1252) if _C1_CONTROLS.search(value) else value


def _urljoin(base: str, uri: str) -> str:
    uri = _URI_FIXER.sub(r"\1\3", uri)
    try:
        return urljoin_fast(base, uri)
    except ValueError:
        return ""


def _safe_absolute_uri(base: str, rel: str) -> str:
    if not base:
        return rel or ""
    if not rel:
        try:
            scheme = urllib.parse.urlparse(base)[0]
        except ValueError:
            return ""
        return base if not scheme or scheme in _ACCEPTABLE_URI_SCHEMES else ""
    uri = _urljoin(base, rel)
    return uri if uri.strip().split(":", 1)[0] in _ACCEPTABLE_URI_SCHEMES else ""


def _map_content_type(value: str) -> str:
    value = value.lower()
    return {
        "text": "text/plain",
        "plain": "text/plain",
        "html": "text/html",
        "xhtml": "application/xhtml+xml",
    }.get(value, value)


def _leaf_text(element: Any) -> str:
    if len(element):
        raise Unsupported("markup inside a text element")
    return (element.text or "").strip()


def _text_type(attrs: Dict, default: str) -> str:
    """The content type of a text construct; xhtml, base64 and other types are unsupported."""
    content_type = _map_content_type(attrs.get("type", default))
    if content_type not in _TEXT_TYPES or "mode" in attrs:
        raise Unsupported("content type")
    return content_type


def _enforce_href(attrs: Dict) -> Dict:
    href = attrs.get("url", attrs.get("uri", attrs.get("href", None)))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs


def _version(root: Any, key: str, attrs: Dict) -> str:
    """feedparser's `version`: namespace declarations first, then the root element."""
    found = set()
    for prefix, uri in root.nsmap.items():
        lowered = uri.lower()
        if prefix is None and lowered == _RSS090:
            found.add("rss090")
        elif lowered == _RSS10:
            found.add("rss10")
        elif lowered == _ATOM10:
            found.add("atom10")
    if len(found) > 1:
        raise Unsupported("ambiguous version")
    version = found.pop() if found else ""
    if key == "rss" and not version.startswith("rss"):
        declared = attrs.get("version", "")
        numbered = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
        version = numbered.get(declared) or ("rss20" if declared.startswith("2.") else "rss")
    elif key == "feed" and not version:
        numbered = {"0.1": "atom01", "0.2": "atom02", "0.3": "atom03"}
        version = numbered.get(attrs.get("version", "")) or "atom"
    if version not in _FAST_VERSIONS:
        raise Unsupported(f"version {version!r}")
    return version


def _check_namespaces(text: str) -> None:
    """Refuse documents whose prefixes would make feedparser remap element names."""
    bound: dict[str, str] = {}
    for match in _XMLNS.finditer(text):
        prefix = match.group(1)
        if prefix is None:
            continue
        uri = (match.group(2) if match.group(2) is not None else match.group(3)).lower()
        if _USERLAND in uri:
            uri = _USERLAND
        if bound.setdefault(prefix, uri) != uri:
            raise Unsupported(f"prefix {prefix} bound twice")
        canonical = _NAMESPACES.get(uri)
        if prefix.lower() in _CANONICAL_PREFIXES and canonical != prefix.lower():
            raise Unsupported(f"prefix {prefix} names another namespace")


def store_author_string(context: Dict, key: str, detail: Dict, author: str) -> None:
    """feedparser's handling of a bare author string: its name and email go into `detail`,
    which becomes `context[key + "_detail"]` unless that is already set."""
    name, email = split_author_email(author)
    if name or email:
        context.setdefault(f"{key}_detail", detail)
    if name:
        detail["name"] = name
    if email:
        detail["email"] = email


def split_author_email(author: str) -> tuple[str, str | None]:
    """feedparser's split of an author string into a name and the email address in it."""
    match = _EMAIL.search(author)
    if not match:
        return author, None
    email = match.group(0)
    author = author.replace(email, "").replace("()", "").replace("<>", "")
    author = author.replace("&lt;&gt;", "").strip()
    if author and author[0] == "(":
        author = author[1:]
    if author and author[-1] == ")":
        author = author[:-1]
    return author.strip(), email


class _Replica:
    """One document's walk; mirrors the parts of feedparser's state that matter."""

    def __init__(self, url: str, text: str) -> None:
        self.url = url
        self.text = text
        self.base = url
        self.feed: Dict = {}
        self.entries: list[Dict] = []
        self.title_depth = -1
        self.guidislink = False
        # per entry
        self.entry: Dict = {}
        self.depths: dict[str, int] = {}
        self.has_content = False
        self.dates: set[str] = set()

    def run(self, root: Any) -> FastFeed:
        key = _key(root.tag)
        if key not in ("rss", "feed", "rdf:rdf") or not root.tag.isascii():
            raise Unsupported(f"root {root.tag}")
        _check_namespaces(self.text)
        attrs = _attrs(root)
        version = _version(root, key, attrs)
        self._set_base(attrs.get("xml:base", attrs.get("base")))
        if key == "rss":
            self._rss_children(root)
        elif key == "feed":
            self._feed_children(root, 2, infeed=True)
        else:
            self._rdf_children(root)
        return FastFeed(version=version, feed=self.feed, entries=self.entries)

    def _set_base(self, declared: str | None) -> None:
        base = _safe_absolute_uri(self.url, declared or self.url) or self.url
        if (_safe_absolute_uri(base, base) or base) != base:
            raise Unsupported("base URI is not stable")
        self.base = base

    def _resolve(self, uri: str) -> str:
        return _urljoin(self.base, uri)

    def _checked_attrs(self, element: Any) -> Dict:
        if not element.tag.isascii():
            raise Unsupported("non-ASCII element name")
        attrs = _attrs(element)
        if attrs and ("base" in attrs or "xml:base" in attrs):
            raise Unsupported("xml:base below the root")
        return attrs

    # -- document structure ----------------------------------------------------------------

    def _rss_children(self, root: Any) -> None:
        channels = [child for child in root if _key(child.tag) == "channel"]
        if len(channels) != 1 or len(root) != 1:
            raise Unsupported("rss without exactly one channel")
        self._channel(channels[0], 2)

    def _rdf_children(self, root: Any) -> None:
        for child in root:
            key = _key(child.tag)
            if key == "channel":
                self._channel(child, 2)
            elif key in ("item", "image", "textinput"):
                self._feed_element(child, key, 2, infeed=False)
            else:
                raise Unsupported(f"{child.tag} in rdf:RDF")

    def _channel(self, channel: Any, depth: int) -> None:
        attrs = self._checked_attrs(channel)
        if "lastmod" in attrs or "href" in attrs:
            raise Unsupported("CDF channel")
        self._feed_children(channel, depth + 1, infeed=True)

    def _feed_children(self, parent: Any, depth: int, *, infeed: bool) -> None:
        for child in parent:
            self._feed_element(child, _key(child.tag), depth, infeed=infeed)

    def _feed_element(self, element: Any, key: str | None, depth: int, *, infeed: bool) -> None:
        attrs = self._checked_attrs(element)
        if key in ("item", "entry"):
            self._entry(element, attrs, depth)
        elif key in _TITLE or key == "media:title":
            self._feed_title(element, attrs, depth, infeed, media=key == "media:title")
        elif key == "link":
            self._feed_link(element, attrs, infeed)
        elif key in _GUID:
            self._feed_guid(element, attrs, infeed)
        elif key in ("image", "textinput"):
            self._feed_image(element, key, depth, infeed)
        elif key in _HINTS:
            self._hint(element, key.replace(":", "_"), attrs, infeed)
        elif key in _AUTHOR or key == "contributor":
            self._person_children(element)
        elif key in _FEED_INERT_HANDLED:
            _leaf_text(element)
        else:
            self._generic(element, key, depth, entry=False)

    def _generic(self, element: Any, key: str | None, depth: int, *, entry: bool) -> None:
        """An element without a feedparser handler: harmless if its key is never read."""
        if key is None:
            local = element.tag.rpartition("}")[2].lower()
            if local in _RISKY_LOCAL_NAMES:
                raise Unsupported(f"unknown namespace element {element.tag}")
        else:
            name = key.replace(":", "_")
            if name in HANDLERS or _KEYMAP.get(name, name) in _READ_KEYS:
                raise Unsupported(f"element {key}")
        for child in element:
            if entry:
                self._entry_element(child, _key(child.tag), depth + 1)
            else:
                self._feed_element(child, _key(child.tag), depth + 1, infeed=True)

    # -- feed level --------------------------------------------------------------------------

    def _feed_title(self, element: Any, attrs: Dict, depth: int, infeed: bool, media: bool) -> None:
        _text_type(attrs, "text/plain")
        value = _leaf_text(element)
        if infeed:
            value = _fp_text(value)
            if not -1 < self.title_depth <= depth:
                self.feed["title"] = value
        if value and not media:
            self.title_depth = depth

    def _feed_link(self, element: Any, attrs: Dict, infeed: bool) -> None:
        value = _leaf_text(element)
        attrs = self._link_attrs(attrs)
        if "href" in attrs:
            if attrs["rel"] == "alternate" and _map_content_type(attrs["type"]) in _HTML_TYPES:
                self.feed["link"] = attrs["href"]
        elif infeed:
            self.feed["link"] = _LINK_REF.sub(r"&\g<1>", _fp_text(self._resolve_text(value)))

    def _feed_guid(self, element: Any, attrs: Dict, infeed: bool) -> None:
        value = self._guid_value(element, attrs)
        if infeed:
            self.feed["id"] = value
        if self.guidislink:
            self.feed.setdefault("link", value)

    def _feed_image(self, element: Any, key: str, depth: int, infeed: bool) -> None:
        """Channel image/textInput: only their titles touch feedparser's title depth."""
        allowed = _IMAGE_CHILDREN if key == "image" else _TEXTINPUT_CHILDREN
        self.title_depth = -1
        for child in element:
            child_key = _key(child.tag)
            attrs = self._checked_attrs(child)
            if child_key not in allowed:
                raise Unsupported(f"{child.tag} in {key}")
            value = _leaf_text(child)
            if child_key == "title":
                _text_type(attrs, "text/plain")
                if value:
                    self.title_depth = depth + 1

    def _hint(self, element: Any, key: str, attrs: Dict, infeed: bool) -> None:
        value = _leaf_text(element)
        if attrs:
            self.feed[key] = attrs
        elif infeed:
            self.feed[key] = _fp_text(value)

    def _person_children(self, element: Any) -> None:
        for child in element:
            self._checked_attrs(child)
            if _key(child.tag) not in _AUTHOR_PARTS:
                raise Unsupported(f"{child.tag} in a person")
            _leaf_text(child)

    # -- entries -----------------------------------------------------------------------------

    def _entry(self, element: Any, attrs: Dict, depth: int) -> None:
        if "lastmod" in attrs or "href" in attrs:
            raise Unsupported("CDF item")
        self.entry = {}
        self.entries.append(self.entry)
        self.depths = {}
        self.has_content = False
        self.dates = set()
        self.guidislink = False
        self.title_depth = -1
        about = attrs.get("rdf:about")
        if about:
            self.entry["id"] = about
        for child in element:
            self._entry_element(child, _key(child.tag), depth + 1)
        self.has_content = False

    def _entry_element(self, element: Any, key: str | None, depth: int) -> None:
        attrs = self._checked_attrs(element)
        handler = _ENTRY_HANDLERS.get(key or "")
        if handler is not None:
            handler(self, element, key or "", attrs, depth)
        elif key in ("media:content", "media:group"):
            if key == "media:content":
                self.entry.setdefault("media_content", []).append(attrs)
            for child in element:
                self._entry_element(child, _key(child.tag), depth + 1)
        elif key == "contributor":
            self._person_children(element)
        elif key in _INERT_HANDLED:
            _leaf_text(element)
        else:
            self._generic(element, key, depth, entry=True)

    def _store(self, key: str, value: object, depth: int) -> None:
        """feedparser keeps the value found at the shallowest depth (last one among equals)."""
        old = self.depths.get(key)
        if old is None or depth <= old:
            self.depths[key] = depth
            self.entry[key] = value

    def _title(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        _text_type(attrs, "text/plain")
        value = _fp_text(_leaf_text(element))
        if not -1 < self.title_depth <= depth:
            self._store("title", value, depth)
            self.entry["title_detail"] = {"base": self.base}
        if value and key != "media:title":
            self.title_depth = depth

    def _link(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        value = _leaf_text(element)
        attrs = self._link_attrs(attrs)
        links = self.entry.setdefault("links", [])
        links.append(attrs)
        if "href" in attrs:
            if attrs["rel"] == "alternate" and _map_content_type(attrs["type"]) in _HTML_TYPES:
                self.entry["link"] = attrs["href"]
            return
        value = _fp_text(self._resolve_text(value)).replace("&amp;", "&")
        value = _LINK_REF.sub(r"&\g<1>", value)
        self.entry["link"] = value
        if value:
            links[-1]["href"] = value

    def _link_attrs(self, attrs: Dict) -> Dict:
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        attrs = _enforce_href(attrs)
        if "href" in attrs:
            attrs["href"] = self._resolve(attrs["href"])
        return attrs

    def _resolve_text(self, value: str) -> str:
        return self._resolve(value) if value else value

    def _description(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        default = "text/html" if key in _DESCRIPTION else "text/plain"
        if "summary" in self.entry and not self.has_content:
            self._content_block(element, attrs, "text/plain")
            return
        _text_type(attrs, default)
        self._store("summary", _fp_text(_leaf_text(element)), depth)
        self.entry["summary_detail"] = {"base": self.base}

    def _content(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        self._content_block(
            element, attrs, "text/html" if key == "content:encoded" else "text/plain"
        )

    def _content_block(self, element: Any, attrs: Dict, default: str) -> None:
        """feedparser's `_start_content`/`_end_content`: a content value, copied as summary."""
        self.has_content = True
        _text_type(attrs, default)
        value = _fp_text(_leaf_text(element))
        self.entry.setdefault("content", []).append({"value": value})
        self.entry.setdefault("summary", value)

    def _guid(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        value = self._guid_value(element, attrs)
        self._store("id", value, depth)
        self.entry.setdefault("guidislink", self.guidislink and "link" not in self.entry)
        if self.guidislink:
            self.entry.setdefault("link", value)

    def _guid_value(self, element: Any, attrs: Dict) -> str:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        value = _leaf_text(element)
        if value and self.guidislink:
            value = self._resolve(value)
        return _fp_text(value)

    def _date(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        field = "published" if key in _PUBLISHED else "updated"
        if field in self.dates:
            raise Unsupported(f"second {field} date")
        self.dates.add(field)
        value = _fp_text(_leaf_text(element))
        if value and not _SAFE_DATE.fullmatch(value):
            raise Unsupported(f"date format {value!r}")
        self._store(field, value, depth)

    def _author(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        self.entry.setdefault("authors", []).append({})
        for child in element:
            self._checked_attrs(child)
            part = _AUTHOR_PARTS.get(_key(child.tag) or "")
            if part is None:
                raise Unsupported(f"{child.tag} in an author")
            value = _leaf_text(child)
            if part == "href":
                value = _fp_text(self._resolve_text(value))
            self._save_author(part, value)
        own = (element.text or "") + "".join(child.tail or "" for child in element)
        self._store("author", _fp_text(own.strip()), depth)
        self._sync_author_detail()

    def _save_author(self, key: str, value: str) -> None:
        self.entry.setdefault("author_detail", {})[key] = value
        self._sync_author_detail()
        self.entry.setdefault("authors", [{}])[-1][key] = value

    def _sync_author_detail(self) -> None:
        """feedparser's `_sync_author_detail`, including its email-in-name heuristics."""
        context = self.entry
        detail: Dict = context.get("authors", [{}])[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                context["author"] = f"{name} ({email})"
            elif name or email:
                context["author"] = name or email
            return
        author = context.get("author")
        if author:
            store_author_string(context, "author", detail, author)

    def _category(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        if key == "media:category":
            attrs.setdefault("scheme", _MRSS_CATEGORY_SCHEME)
        scheme = attrs.get("scheme", attrs.get("domain"))
        self._add_tag(attrs.get("term"), scheme, attrs.get("label"))
        value = _fp_text(_leaf_text(element))
        if not value:
            return
        tags = self.entry["tags"]
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self._add_tag(value, None, None)

    def _add_tag(self, term: object, scheme: object, label: object) -> None:
        tags = self.entry.setdefault("tags", [])
        if (not term and not scheme and not label) or len(tags) >= MAX_TAGS:
            return
        tag = {"term": term, "scheme": scheme, "label": label}
        if tag not in tags:
            tags.append(tag)

    def _thumbnail(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        value = _leaf_text(element)
        self.entry.setdefault("media_thumbnail", []).append(attrs)
        if value and "url" not in attrs:
            attrs["url"] = _fp_text(self._resolve(value))

    def _enclosure(self, element: Any, key: str, attrs: Dict, depth: int) -> None:
        _leaf_text(element)
        attrs = _enforce_href(attrs)
        attrs["rel"] = "enclosure"
        self.entry.setdefault("links", []).append(attrs)


_ENTRY_HANDLERS = {
    **dict.fromkeys(_TITLE | {"media:title"}, _Replica._title),
    "link": _Replica._link,
    **dict.fromkeys(_DESCRIPTION | _SUMMARY, _Replica._description),
    "content": _Replica._content,
    "content:encoded": _Replica._content,
    **dict.fromkeys(_GUID, _Replica._guid),
    **dict.fromkeys(_PUBLISHED | _UPDATED, _Replica._date),
    **dict.fromkeys(_AUTHOR, _Replica._author),
    **dict.fromkeys(_CATEGORY, _Replica._category),
    "media:thumbnail": _Replica._thumbnail,
    "enclosure": _Replica._enclosure,
}
