"""config.yaml + AGGREGATOR_* environment → frozen, validated settings.

Settings are passed in, never read from a global. Every validation error names the key path
(``sources[3].url: not an http(s) URL``) so the CLI can print one clear line and exit 2.

Environment overrides: ``AGGREGATOR_CONFIG`` (path of the file), ``AGGREGATOR_STORAGE_URL``,
``AGGREGATOR_DATA_DIR`` and ``AGGREGATOR_ALLOW_PRIVATE_NETWORKS`` (``1``/``true``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from aggregator.errors import ConfigError
from aggregator.yaml_input import YamlInputError, load_yaml

DEFAULT_CONFIG_PATH = Path("config.yaml")


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


def _check_directory(value: str) -> str:
    if Path(value).exists() and not Path(value).is_dir():
        raise ValueError(f"{value} exists and is not a directory")
    return value


DirectoryPath = Annotated[str, AfterValidator(_check_directory)]
"""A directory, or a path where one will be created."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _check_storage_url(value: str) -> str:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme.split("+", 1)[0] not in ("sqlite", "postgresql"):
        raise ValueError("not a sqlite:/// or postgresql+psycopg:// URL")
    return value


class StorageSettings(_Strict):
    """Where records live."""

    url: Annotated[str, AfterValidator(_check_storage_url)] = "sqlite:///data/aggregator.db"
    busy_timeout_seconds: float = Field(default=30.0, gt=0)


class FetchSettings(_Strict):
    """HTTP behaviour: identity, limits, politeness and the SSRF guard."""

    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator/aggregator)"
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    max_body_bytes: int = Field(default=15 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(default=16, ge=1, le=512)
    per_host_concurrency: int = Field(default=2, ge=1, le=64)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0)
    max_retry_after_seconds: float = Field(default=60.0, ge=0)
    respect_robots: bool = True
    allow_private_networks: bool = False
    fetch_pages: bool = True
    max_pages_per_source: int = Field(default=100, ge=0)
    # Processes that parse feeds and extract pages (0: in this process; None: one per CPU
    # beyond the first, see aggregator.workpool.default_workers).
    parse_workers: int | None = Field(default=None, ge=0, le=64)


class SourceSettings(_Strict):
    """One feed to follow."""

    name: str = Field(min_length=1, max_length=200)
    url: HttpUrl
    category: str = "news"
    type: str = "article"
    pages: bool = True
    provider: str | None = None
    weight: float = Field(default=1.0, ge=0, le=2)


class TopicWeights(_Strict):
    """How much a match counts by where it occurs."""

    title: float = Field(default=3.0, ge=0)
    excerpt: float = Field(default=2.0, ge=0)
    body: float = Field(default=1.0, ge=0)
    category: float = Field(default=3.0, ge=0)


class TopicSettings(_Strict):
    """A topic: a name and the declarative rules that decide membership."""

    name: str = Field(min_length=1, max_length=100)
    keywords: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    weights: TopicWeights = TopicWeights()
    threshold: float = Field(default=3.0, ge=0)
    webhooks: tuple[HttpUrl, ...] = ()
    retention_days: int | None = Field(default=None, ge=1)


class QualitySettings(_Strict):
    """Publication threshold for the quality score."""

    threshold: int = Field(default=40, ge=0, le=100)


class StorySettings(_Strict):
    """Story clustering and related-record linking."""

    window_hours: float = Field(default=72.0, gt=0)
    related_max: int = Field(default=6, ge=0, le=50)
    # the linker's in-memory index holds the window's records up to this many (about 20 KB
    # each); beyond it the earliest-added leave early, so memory stays flat however many
    # feeds are followed. Raise it when more records than this arrive within one window.
    max_linked: int = Field(default=8_000, ge=1_000)


class ExportSettings(_Strict):
    """Where and what to export."""

    dir: DirectoryPath = "data/export"
    formats: tuple[Literal["md", "jsonl", "feeds"], ...] = ("md", "jsonl", "feeds")
    feed_size: int = Field(default=50, ge=1, le=10_000)
    base_url: HttpUrl = "http://127.0.0.1:8080/"


class SchedulerSettings(_Strict):
    """The daemon's job schedule (seconds, see `aggregator.daemon.DaemonSettings`) and the
    adaptive polling policy of every source (see `aggregator.schedule.SchedulePolicy`)."""

    mode: Literal["local", "distributed"] = "local"  # distributed: see aggregator.distributed
    stalled_after: float = Field(default=30, gt=0)  # a silent worker's jobs are re-queued
    crawl_tick: float = Field(default=30, gt=0)
    export_debounce: float = Field(default=30, ge=0)
    min_interval_minutes: float = Field(default=5, gt=0)
    max_interval_hours: float = Field(default=24, gt=0)
    error_backoff_cap_hours: float = Field(default=24, gt=0)
    dead_after_days: float = Field(default=7, gt=0)
    dead_probe_interval_days: float = Field(default=7, gt=0)
    jitter_fraction: float = Field(default=0.1, ge=0, lt=1)
    redirect_confirm_days: float = Field(default=3, ge=0)
    per_host_per_tick: int = Field(default=2, ge=1)
    prune_every: float = Field(default=21600, gt=0)
    retention_days: int | None = Field(default=90, ge=1)
    heartbeat_every: float = Field(default=60, gt=0)
    grace_period: float = Field(default=20, ge=0)
    misfire_grace_time: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _interval_order(self) -> SchedulerSettings:
        if self.min_interval_minutes > self.max_interval_hours * 60:
            raise ValueError("min_interval_minutes is longer than max_interval_hours")
        return self


class Settings(_Strict):
    """The whole configuration."""

    data_dir: DirectoryPath = "data"
    storage: StorageSettings = StorageSettings()
    fetch: FetchSettings = FetchSettings()
    sources: tuple[SourceSettings, ...] = ()
    topics: tuple[TopicSettings, ...] = ()
    quality: QualitySettings = QualitySettings()
    stories: StorySettings = StorySettings()
    export: ExportSettings = ExportSettings()
    scheduler: SchedulerSettings = SchedulerSettings()

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        _reject_duplicates("sources", [s.name for s in self.sources])
        _reject_duplicates("topics", [t.name for t in self.topics])
        return self

    def source(self, name: str) -> SourceSettings | None:
        """The source called `name`, or None."""
        return next((s for s in self.sources if s.name == name), None)


def _reject_duplicates(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{section}[{index}].name: duplicate name {name!r}")
        seen.add(name)


def format_key_path(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as ``sources[3].url``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def parse_settings(data: Any) -> Settings:
    """Validate a decoded config mapping; raise ConfigError naming the first bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", "the config must be a mapping at the top level")
    try:
        return Settings.model_validate(_apply_env(data))
    except ValidationError as exc:
        raise _config_error_from(exc) from None


def _config_error_from(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    message = str(first["msg"])
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        if ": " in message and message.split(": ", 1)[0].count("[") == 1:
            key_path, detail = message.split(": ", 1)
            return ConfigError(key_path, detail)
    location = tuple(part for part in first["loc"] if isinstance(part, int | str))
    return ConfigError(format_key_path(location), message)


def _apply_env(data: dict[str, Any]) -> dict[str, Any]:
    merged = dict(data)
    if url := os.environ.get("AGGREGATOR_STORAGE_URL"):
        merged["storage"] = {**(merged.get("storage") or {}), "url": url}
    if data_dir := os.environ.get("AGGREGATOR_DATA_DIR"):
        merged["data_dir"] = data_dir
    flag = os.environ.get("AGGREGATOR_ALLOW_PRIVATE_NETWORKS", "").lower()
    if flag in ("1", "true", "yes"):
        merged["fetch"] = {**(merged.get("fetch") or {}), "allow_private_networks": True}
    return merged


def config_path(explicit: str | Path | None = None) -> Path:
    """The config file to read: the explicit path, else $AGGREGATOR_CONFIG, else config.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("AGGREGATOR_CONFIG") or DEFAULT_CONFIG_PATH)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate the config file; raise ConfigError with a key path on any problem."""
    resolved = config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {resolved}: {exc.strerror}") from None
    try:
        data = load_yaml(text)
    except YamlInputError as exc:
        raise ConfigError("", f"{resolved} is not valid YAML: {exc}") from None
    return parse_settings(data)
