"""`chunked`: IN lists and executemany batches kept under the drivers' parameter limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

CHUNK = 500
_T = TypeVar("_T")


def chunked(items: Iterable[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    """Split `items` into lists of at most `size` (keeps IN lists under driver limits)."""
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
