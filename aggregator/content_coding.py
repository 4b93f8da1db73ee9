"""gzip and deflate bodies decoded where they are used, not where they are fetched.

The crawling process reads an article page's body still compressed (`Fetcher.fetch(...,
encoded=True)`) and hands it to a parse worker, which decodes it here before extracting:
decompression was the crawling process's largest single cost after HTTP itself (about
0.5 ms a page), and a compressed body is a quarter of the bytes to send to the worker.

The same limits as a decoded fetch: the decoded body may not pass `cap` bytes (a gzip bomb
stops there), and a stream that ends before its end marker is an error.
"""

from __future__ import annotations

import zlib

from aggregator.errors import BodyTooLargeError, FetchError

DEFERRABLE = frozenset({"gzip", "x-gzip", "deflate"})
_CHUNK = 1 << 16


def deferrable(content_encoding: str) -> bool:
    """Whether a body with this Content-Encoding header can be left for `decode_content`."""
    return content_encoding.strip().lower() in DEFERRABLE


def decode_content(url: str, raw: bytes, encoding: str, cap: int, status: int = 200) -> bytes:
    """`raw` decoded from `encoding` (gzip, deflate, or "" for none), at most `cap` bytes.

    Raises BodyTooLargeError past `cap`, FetchError for a corrupt or truncated stream."""
    coding = encoding.strip().lower()
    if not coding:
        return raw
    if coding not in DEFERRABLE:
        raise FetchError(url, f"cannot decode Content-Encoding {encoding!r}")
    try:
        return _inflate(url, raw, _decompressor(coding, raw), cap, status)
    except zlib.error as exc:
        raise FetchError(url, f"could not decode the compressed body: {exc}") from exc


def _decompressor(coding: str, raw: bytes) -> zlib._Decompress:
    if coding != "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    # "deflate" is meant to be zlib-wrapped, but servers also send raw deflate
    try:
        zlib.decompressobj().decompress(raw[:2])
    except zlib.error:
        return zlib.decompressobj(-zlib.MAX_WBITS)
    return zlib.decompressobj()


def _inflate(url: str, raw: bytes, decompressor: zlib._Decompress, cap: int, status: int) -> bytes:
    out = bytearray()
    pending = raw
    while not decompressor.eof:
        chunk = decompressor.decompress(pending, _CHUNK)
        pending = decompressor.unconsumed_tail
        out += chunk
        if len(out) > cap:
            raise BodyTooLargeError(url, f"body passed the {cap}-byte cap", status)
        if not (chunk or pending or decompressor.eof):
            raise FetchError(url, "compressed body ends early (truncated gzip/deflate stream)")
    return bytes(out)
