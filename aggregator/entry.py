"""The `aggregator` console script: `aggregator.cli.main` with start-up tuned for a
short-lived process (see `aggregator.startup`)."""

from __future__ import annotations

from aggregator import startup


def main() -> None:
    """Console-script entry point."""
    startup.mark_console_process()
    with startup.settling():
        from aggregator import cli
    try:
        cli.main()
    finally:
        startup.before_exit()
