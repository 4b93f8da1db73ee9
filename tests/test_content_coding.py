"""Bodies left compressed by the crawling process and decoded in the parse worker."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from aggregator.content_coding import decode_content, deferrable
from aggregator.errors import BodyTooLargeError, FetchError

CAP = 1 << 20


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 700_000])
@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
    ],
)
def test_round_trips_every_size_and_coding(size: int, coding: str, encode) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(size // 2) + b"<p>text</p>" * (size // 22)
    assert decode_content("http://x/", encode(data), coding, CAP) == data


def test_an_unencoded_body_comes_back_as_it_is() -> None:
    assert decode_content("http://x/", b"\x1f\x8b not gzip", "", CAP) == b"\x1f\x8b not gzip"


def test_the_cap_applies_to_the_decoded_size() -> None:
    bomb = gzip.compress(b"\0" * (CAP * 64), compresslevel=9)
    assert len(bomb) < CAP // 8
    with pytest.raises(BodyTooLargeError, match=rf"passed the {CAP}-byte cap") as caught:
        decode_content("http://x/", bomb, "gzip", CAP, status=200)
    assert caught.value.status == 200  # not worth retrying


def test_a_body_of_exactly_the_cap_passes() -> None:
    data = b"a" * CAP
    assert decode_content("http://x/", gzip.compress(data), "gzip", CAP) == data


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (gzip.compress(b"x" * 100_000)[:-30], "ends early"),
        (gzip.compress(b"")[:5], "ends early"),
        (b"", "ends early"),
        (b"definitely not gzip", "could not decode"),
    ],
)
def test_a_truncated_or_corrupt_stream_is_an_error_with_no_status(raw: bytes, message: str) -> None:
    with pytest.raises(FetchError, match=message) as caught:
        decode_content("http://x/", raw, "gzip", CAP)
    assert caught.value.status is None  # a fetch error: the page may be fetched again


def test_only_gzip_and_deflate_are_left_for_later() -> None:
    assert deferrable("gzip") and deferrable(" GZIP ") and deferrable("deflate")
    assert not deferrable("br") and not deferrable("gzip, br") and not deferrable("")
    with pytest.raises(FetchError, match="cannot decode"):
        decode_content("http://x/", b"...", "br", CAP)
