"""What every command module shares: the --config option, one-line errors, opening the store.

cli.py, daemon.py, distributed.py, sources.py, serve.py and store/migrate.py define commands;
they all take `--config` and report usage or configuration errors the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from aggregator.errors import ConfigError
from aggregator.settings import Settings, load_settings

if TYPE_CHECKING:  # store/migrate.py imports this module: no runtime import of the store here
    from aggregator.store import Store

EXIT_USAGE = 2

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $AGGREGATOR_CONFIG or config.yaml)."
    ),
]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear error line to stderr and exit with `code`."""
    # escape: "sources[3].url" is not markup; soft_wrap: one line however long
    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


def settings_or_exit(config: Path | None) -> Settings:
    """Load settings, turning a ConfigError into one line and exit status 2."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(str(exc))


def open_store(settings: Settings) -> Store:
    """The store the settings name (a `LazyStore`: SQLAlchemy loads when first needed)."""
    from aggregator.store.lazy import LazyStore

    storage = settings.storage
    return LazyStore(storage.url, busy_timeout_seconds=storage.busy_timeout_seconds)
