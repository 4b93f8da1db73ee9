"""The one error tree of the aggregator.

    AggregatorError
    ├── ConfigError(key_path)
    ├── FetchError(url, status)     NotModified is a result, not an error
    │   ├── BlockedAddressError     SSRF guard refused the destination
    │   ├── RobotsDisallowedError   robots.txt forbids the page
    │   └── BodyTooLargeError       the body passed max_body_bytes
    ├── ParseError(url)
    ├── ExtractError(url)
    ├── StorageError
    ├── ExportError(path)
    └── SealError                   a sealed record does not verify

Third-party exceptions are mapped into this tree at the module that imports the library
(`raise ... from exc`), so callers only ever catch `AggregatorError`.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base class for every error the aggregator raises on purpose."""


class ConfigError(AggregatorError):
    """Invalid configuration; `key_path` names the offending key (``sources[3].url``)."""

    def __init__(self, key_path: str, message: str) -> None:
        self.key_path = key_path
        self.message = message
        super().__init__(f"{key_path}: {message}" if key_path else message)


class FetchError(AggregatorError):
    """A URL could not be fetched; `status` is the HTTP status when there was one, and
    `retry_after` the seconds a final 429/503 asked us to wait (None when it did not)."""

    def __init__(
        self, url: str, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.url = url
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{message} ({url})")


class BlockedAddressError(FetchError):
    """The destination resolves to an address the SSRF guard refuses."""


class RobotsDisallowedError(FetchError):
    """robots.txt of the host disallows our user agent for this URL."""


class BodyTooLargeError(FetchError):
    """The response body is larger than the configured cap."""


class ParseError(AggregatorError):
    """A fetched document could not be parsed as a feed."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{message} ({url})")


class ExtractError(AggregatorError):
    """A page could not be turned into metadata."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{message} ({url})")


class StorageError(AggregatorError):
    """The database refused or failed an operation."""


class ExportError(AggregatorError):
    """An export file could not be written or read."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class SealError(AggregatorError):
    """A record's seal is missing, malformed, or does not match its public fields."""
