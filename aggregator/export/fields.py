"""Record ⇄ public dict: the seed's keys, in the seed's order, and nothing private.

Every exporter (Markdown front matter, JSON Lines, the seal's hashes) goes through
`record_to_public`, so they all agree on names, order and value formats:

    category, title, excerpt, publishedDateTime, webUrl, ampWebUrl, cdnAmpWebUrl, type,
    quality, heat, published, provider{name, domain}, topics,
    images[{url, width, height, title}],
    related[{title, excerpt, publishedDateTime, webUrl, ampWebUrl, cdnAmpWebUrl, type,
             provider, quality, images[{url, width, height}]}],
    secured

Image width/height are omitted when unknown and an image title when it is None. Related
images carry no title, as in the seed. `publishedDateTime` is `format_utc` text or None.
`public_to_record` is the inverse; it raises `ValueError` naming the offending field
(``related[2].images[0].width: …``). Provenance, text and quality reasons are private and
do not survive a round trip through the public shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from aggregator.dates import format_utc, parse_datetime, to_utc
from aggregator.models import Image, Provider, Record, RelatedRecord

PUBLIC_KEYS: tuple[str, ...] = (
    "category",
    "title",
    "excerpt",
    "publishedDateTime",
    "webUrl",
    "ampWebUrl",
    "cdnAmpWebUrl",
    "type",
    "quality",
    "heat",
    "published",
    "provider",
    "topics",
    "images",
    "related",
    "secured",
)
RELATED_KEYS: tuple[str, ...] = (
    "title",
    "excerpt",
    "publishedDateTime",
    "webUrl",
    "ampWebUrl",
    "cdnAmpWebUrl",
    "type",
    "provider",
    "quality",
    "images",
)

_T = TypeVar("_T")
_DEFAULTS = Record(title="", web_url="", provider=Provider("", ""))


def record_to_public(
    record: Record, *, related: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Return the record's public fields as a plain dict in the seed's key order.

    `related`, when given, is the `related_to_public` of each of `record.related`.
    """
    return {
        "category": record.category,
        "title": record.title,
        "excerpt": record.excerpt,
        "publishedDateTime": _format_date(record.published),
        "webUrl": record.web_url,
        "ampWebUrl": record.amp_web_url,
        "cdnAmpWebUrl": record.cdn_amp_web_url,
        "type": record.type,
        "quality": record.quality,
        "heat": record.heat,
        "published": record.is_published,
        "provider": _provider_to_public(record.provider),
        "topics": list(record.topics),
        "images": [image_to_public(image, with_title=True) for image in record.images],
        "related": [related_to_public(item) for item in record.related]
        if related is None
        else related,
        "secured": record.secured,
    }


def related_to_public(item: RelatedRecord) -> dict[str, Any]:
    """Return a related record as a plain dict in the seed's key order (images untitled)."""
    return {
        "title": item.title,
        "excerpt": item.excerpt,
        "publishedDateTime": _format_date(item.published),
        "webUrl": item.web_url,
        "ampWebUrl": item.amp_web_url,
        "cdnAmpWebUrl": item.cdn_amp_web_url,
        "type": item.type,
        "provider": _provider_to_public(item.provider),
        "quality": item.quality,
        "images": [image_to_public(image, with_title=False) for image in item.images],
    }


def image_to_public(image: Image, *, with_title: bool) -> dict[str, Any]:
    """Return an image dict; unknown width/height and a None title are left out."""
    data: dict[str, Any] = {"url": image.url}
    if image.width is not None:
        data["width"] = image.width
    if image.height is not None:
        data["height"] = image.height
    if with_title and image.title is not None:
        data["title"] = image.title
    return data


def _provider_to_public(provider: Provider) -> dict[str, str]:
    return {"name": provider.name, "domain": provider.domain}


def _format_date(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def public_to_record(data: Mapping[str, Any]) -> Record:
    """Build a Record from a public dict; missing optional fields take the model defaults.

    `title`, `webUrl` and `provider.name` are required. Raises ValueError naming the field.
    """
    _require_mapping(data, "record")
    defaults = _DEFAULTS
    return Record(
        category=_opt(data, "category", str, defaults.category),
        title=_req(data, "title", str),
        excerpt=_opt(data, "excerpt", str, ""),
        published=_date_field(data, "publishedDateTime", ""),
        web_url=_req(data, "webUrl", str),
        amp_web_url=_opt(data, "ampWebUrl", str, ""),
        cdn_amp_web_url=_opt(data, "cdnAmpWebUrl", str, ""),
        type=_opt(data, "type", str, defaults.type),
        quality=_int_field(data, "quality", "", defaults.quality),
        heat=_int_field(data, "heat", "", defaults.heat),
        is_published=_opt(data, "published", bool, False),
        provider=_provider(data.get("provider"), "provider"),
        topics=tuple(_str_list(data.get("topics"), "topics")),
        images=_images(data.get("images"), "images", with_title=True),
        related=tuple(
            _related(item, f"related[{i}]")
            for i, item in enumerate(_list(data.get("related"), "related"))
        ),
        secured=_opt(data, "secured", str, ""),
    )


def _related(data: Any, where: str) -> RelatedRecord:
    _require_mapping(data, where)
    return RelatedRecord(
        title=_req(data, "title", str, where),
        excerpt=_opt(data, "excerpt", str, "", where),
        published=_date_field(data, "publishedDateTime", where),
        web_url=_req(data, "webUrl", str, where),
        amp_web_url=_opt(data, "ampWebUrl", str, "", where),
        cdn_amp_web_url=_opt(data, "cdnAmpWebUrl", str, "", where),
        type=_opt(data, "type", str, "article", where),
        provider=_provider(data.get("provider"), f"{where}.provider"),
        quality=_int_field(data, "quality", where, 0),
        images=_images(data.get("images"), f"{where}.images", with_title=False),
    )


def _provider(data: Any, where: str) -> Provider:
    if data is None:
        raise ValueError(f"{where}: required field is missing")
    _require_mapping(data, where)
    return Provider(
        name=_req(data, "name", str, where), domain=_opt(data, "domain", str, "", where)
    )


def _images(data: Any, where: str, *, with_title: bool) -> tuple[Image, ...]:
    # Related images have no title in the shape; one found on input is dropped, not kept
    # invisibly, so that parse(render(parse(x))) == parse(x).
    images = []
    for i, item in enumerate(_list(data, where)):
        here = f"{where}[{i}]"
        _require_mapping(item, here)
        images.append(
            Image(
                url=_req(item, "url", str, here),
                width=_int_field(item, "width", here, None),
                height=_int_field(item, "height", here, None),
                title=_opt(item, "title", str, None, here) if with_title else None,
            )
        )
    return tuple(images)


def _str_list(data: Any, where: str) -> list[str]:
    items = _list(data, where)
    for i, item in enumerate(items):
        _check(item, str, f"{where}[{i}]")
    return items


def _list(data: Any, where: str) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list | tuple):
        raise ValueError(f"{where}: expected a list, got {type(data).__name__}")
    return list(data)


def _require_mapping(data: Any, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check(value: Any, kind: type[_T], where: str) -> _T:
    # bool is an int subclass: a `true` quality or width is a type error, not 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _req(data: Mapping[str, Any], key: str, kind: type[_T], where: str = "") -> _T:
    if data.get(key) is None:
        raise ValueError(f"{_path(where, key)}: required field is missing")
    return _check(data[key], kind, _path(where, key))


def _opt(data: Mapping[str, Any], key: str, kind: type[_T], default: Any, where: str = "") -> Any:
    value = data.get(key)
    return default if value is None else _check(value, kind, _path(where, key))


_INT64 = range(-(2**63), 2**63)  # what the store's integer columns hold


def _int_field(data: Mapping[str, Any], key: str, where: str, default: int | None) -> Any:
    value = _opt(data, key, int, default, where)
    if value is not None and value not in _INT64:
        raise ValueError(f"{_path(where, key)}: {value} is out of range")
    return value


def _date_field(data: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return parsed
        raise ValueError(f"{_path(where, key)}: not a date: {value[:40]!r}")
    raise ValueError(f"{_path(where, key)}: expected a date, got {type(value).__name__}")
